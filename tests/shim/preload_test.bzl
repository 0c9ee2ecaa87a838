"""A shell test that runs programs with librulloc.so preloaded."""

def preload_test(name, srcs, programs, size = "small"):
    """sh_test whose script gets librulloc.so's path, then each program's.

    Args:
      name: the test's name.
      srcs: the script.
      programs: targets the script runs (binaries or shared libraries).
      size: the test's size.
    """
    native.sh_test(
        name = name,
        srcs = srcs,
        args = ["$(location //:librulloc.so)"] + ["$(location %s)" % p for p in programs],
        data = ["//:librulloc.so"] + programs,
        size = size,
        tags = ["no_sanitizer"],
    )
