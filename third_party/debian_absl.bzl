"""A repository rule that exposes Debian's libabsl-dev under upstream's names.

Debian ships Abseil as shared libraries plus headers in /usr/include. This rule
writes one BUILD file per Abseil package that the project uses, so that labels
such as `@com_google_absl//absl/flags:parse` resolve exactly as they do against
an upstream checkout.
"""

_COMMON = ["raw_logging_internal", "log_severity", "spinlock_wait", "base", "int128", "throw_delegate"]

# package -> target -> Abseil shared libraries (without the libabsl_ prefix),
# most dependent first.
_PACKAGES = {
    "absl/flags": {
        "flag": ["flags_internal", "flags_marshalling", "flags_reflection", "flags_config", "flags_program_name", "flags_private_handle_accessor", "flags_commandlineflag", "flags_commandlineflag_internal", "hash", "city", "low_level_hash", "raw_hash_set", "synchronization", "graphcycles_internal", "stacktrace", "symbolize", "debugging_internal", "demangle_internal", "malloc_internal", "time", "time_zone", "str_format_internal", "strings", "strings_internal"],
        "parse": ["flags_parse", "flags_usage", "flags_usage_internal", "flags_internal", "flags_marshalling", "flags_reflection", "flags_config", "flags_program_name", "flags_private_handle_accessor", "flags_commandlineflag", "flags_commandlineflag_internal", "hash", "city", "low_level_hash", "raw_hash_set", "synchronization", "graphcycles_internal", "stacktrace", "symbolize", "debugging_internal", "demangle_internal", "malloc_internal", "time", "time_zone", "str_format_internal", "strings", "strings_internal"],
    },
    "absl/strings": {
        "strings": ["strings", "strings_internal"],
        "str_format": ["str_format_internal", "strings", "strings_internal"],
    },
    "absl/synchronization": {
        "synchronization": ["synchronization", "graphcycles_internal", "stacktrace", "symbolize", "debugging_internal", "demangle_internal", "malloc_internal", "time", "time_zone", "strings", "strings_internal"],
    },
    "absl/time": {
        "time": ["time", "time_zone", "strings", "strings_internal"],
    },
}

def _debian_absl_impl(ctx):
    ctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % ctx.name)
    ctx.file("BUILD.bazel", "")
    for package, targets in _PACKAGES.items():
        lines = ['package(default_visibility = ["//visibility:public"])', ""]
        for target, libs in targets.items():
            opts = ["-labsl_" + lib for lib in libs + _COMMON] + ["-pthread"]
            lines.append("cc_library(")
            lines.append('    name = "%s",' % target)
            lines.append("    linkopts = %s," % repr(opts))
            lines.append(")")
            lines.append("")
        ctx.file(package + "/BUILD.bazel", "\n".join(lines))

debian_absl_repository = repository_rule(
    implementation = _debian_absl_impl,
    local = True,
)
