// Finds the C++ runtime's operator new for a caller (runtime_new.h).
//
//   dl_iterate_phdr, one walk over the loaded objects (each known by its
//   DT_SONAME, else its file name):
//     libstdc++.so.6 ─┐  the operator, from the object's own dynamic
//     libc++abi.so.1 ─┘  symbol table (GNU or SysV hash)
//     caller's object ── holds a runtime's copy (-static-libstdc++), or is
//                        a runtime, or names one first in DT_NEEDED
//   chosen: the caller's copy, else its runtime's, else the first runtime
//   in load order
//
// By name in the runtime itself: not whatever library comes next in lookup
// order (another allocator's operator new would hand out blocks Rulloc
// cannot free), and found even when the runtime came in with an RTLD_LOCAL
// dlopen (a C program loading C++ plugins). No dlopen, dlsym or dladdr:
// those allocate (the heap may be exhausted: that is why we are here) and
// take the loader's main lock; dl_iterate_phdr does neither.
//
// The caller's runtime is what the loader binds its `new` to in a C
// program whose plugins came in RTLD_LOCAL. Where a runtime is in the global
// scope, the loader would bind to that one instead; the caller's is still
// right there, as its throw, typeinfo and new-handler bind to the global
// runtime's too. The operator is called after the walk: the caller's
// runtime cannot be unloaded under it, the fallback in principle could.
#include "shim/runtime_new.h"

#include <elf.h>
#include <link.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <type_traits>

namespace rulloc::shim {
namespace {

// The mangled names spell size_t as `m` (unsigned long); the symbol
// tables read below are ELF64.
static_assert(std::is_same_v<std::size_t, unsigned long>);
static_assert(std::is_same_v<ElfW(Sym), Elf64_Sym>);
constexpr const char* kMangled[kNewForms] = {
    "_Znwm",
    "_Znam",
    "_ZnwmRKSt9nothrow_t",
    "_ZnamRKSt9nothrow_t",
    "_ZnwmSt11align_val_t",
    "_ZnamSt11align_val_t",
    "_ZnwmSt11align_val_tRKSt9nothrow_t",
    "_ZnamSt11align_val_tRKSt9nothrow_t",
};

enum Runtime { kLibstdcxx, kLibcxx, kRuntimes, kUnknown = -1 };
// The object that defines each runtime's operators (libc++ leaves them to
// libc++abi).
constexpr const char* kOperatorsIn[kRuntimes] = {"libstdc++.so.6", "libc++abi.so.1"};

const char* BaseName(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash != nullptr ? slash + 1 : path;
}

// Which runtime a file name (of a loaded object or a DT_NEEDED entry) is.
Runtime RuntimeNamed(const char* file) {
  if (std::strcmp(file, "libstdc++.so.6") == 0) return kLibstdcxx;
  if (std::strcmp(file, "libc++.so.1") == 0 || std::strcmp(file, "libc++abi.so.1") == 0) {
    return kLibcxx;
  }
  return kUnknown;
}

// A loaded object as dl_iterate_phdr shows it.
class LoadedObject {
 public:
  // One pass over the dynamic section for the tables the lookups read.
  explicit LoadedObject(const dl_phdr_info* info) : info_(info) {
    for (const ElfW(Phdr) & ph : Segments()) {
      if (ph.p_type == PT_DYNAMIC) dynamic_ = reinterpret_cast<const ElfW(Dyn)*>(Start(ph));
    }
    if (dynamic_ == nullptr) return;
    for (const ElfW(Dyn)* d = dynamic_; d->d_tag != DT_NULL; ++d) {
      switch (d->d_tag) {
        case DT_STRTAB:
          strings_ = reinterpret_cast<const char*>(Address(d->d_un.d_ptr));
          break;
        case DT_SYMTAB:
          symbols_ = reinterpret_cast<const ElfW(Sym)*>(Address(d->d_un.d_ptr));
          break;
        case DT_VERSYM:
          versions_ = reinterpret_cast<const ElfW(Versym)*>(Address(d->d_un.d_ptr));
          break;
        case DT_GNU_HASH:
          gnu_hash_ = reinterpret_cast<const uint32_t*>(Address(d->d_un.d_ptr));
          break;
        case DT_HASH:
          sysv_hash_ = reinterpret_cast<const uint32_t*>(Address(d->d_un.d_ptr));
          break;
        case DT_SONAME:
          soname_offset_ = d->d_un.d_val;
          break;
        default:
          break;
      }
    }
  }

  // The DT_SONAME, else the file name.
  const char* Name() const {
    if (strings_ != nullptr && soname_offset_ != kNoSoname) return strings_ + soname_offset_;
    return BaseName(info_->dlpi_name);
  }

  bool Contains(uintptr_t address) const {
    for (const ElfW(Phdr) & ph : Segments()) {
      if (ph.p_type == PT_LOAD && address - Start(ph) < ph.p_memsz) return true;
    }
    return false;
  }

  // The first runtime named by the object's DT_NEEDED entries.
  Runtime NeededRuntime() const {
    if (strings_ == nullptr) return kUnknown;
    for (const ElfW(Dyn)* d = dynamic_; d->d_tag != DT_NULL; ++d) {
      if (d->d_tag != DT_NEEDED) continue;
      const Runtime needed = RuntimeNamed(strings_ + d->d_un.d_val);
      if (needed != kUnknown) return needed;
    }
    return kUnknown;
  }

  // The address of the function the object defines under `name`, or 0.
  uintptr_t Function(const char* name) const {
    if (symbols_ == nullptr || strings_ == nullptr) return 0;
    // Hidden (non-default) versions are skipped, as the loader skips them.
    auto defines = [&](uint32_t index) {
      const ElfW(Sym)& s = symbols_[index];
      return s.st_shndx != SHN_UNDEF && ELF64_ST_TYPE(s.st_info) == STT_FUNC &&
             (versions_ == nullptr || (versions_[index] & 0x8000) == 0) &&
             std::strcmp(strings_ + s.st_name, name) == 0;
    };
    uint32_t found = 0;
    if (gnu_hash_ != nullptr) {
      found = GnuHashLookup(gnu_hash_, name, defines);
    } else if (sysv_hash_ != nullptr) {
      found = SysvHashLookup(sysv_hash_, name, defines);
    }
    return found != 0 ? info_->dlpi_addr + symbols_[found].st_value : 0;
  }

 private:
  struct Span {
    const ElfW(Phdr) * first;
    const ElfW(Phdr) * last;
    const ElfW(Phdr) * begin() const { return first; }
    const ElfW(Phdr) * end() const { return last; }
  };
  Span Segments() const { return {info_->dlpi_phdr, info_->dlpi_phdr + info_->dlpi_phnum}; }
  uintptr_t Start(const ElfW(Phdr) & ph) const { return info_->dlpi_addr + ph.p_vaddr; }

  // A d_ptr entry of the dynamic section as an address in this object.
  // glibc relocates these entries in place where the section is writable
  // and leaves them as offsets where it is not: whichever lies inside one
  // of the object's segments is the address.
  uintptr_t Address(uintptr_t value) const {
    if (Contains(value)) return value;
    if (Contains(value + info_->dlpi_addr)) return value + info_->dlpi_addr;
    return 0;
  }

  // The GNU hash table: [nbuckets, symoffset, bloom words, bloom shift],
  // bloom[], buckets[], chain[] (one hash per symbol from symoffset, low bit
  // set on the last of a bucket).
  template <class Defines>
  static uint32_t GnuHashLookup(const uint32_t* table, const char* name, Defines defines) {
    uint32_t hash = 5381;
    for (const char* c = name; *c != '\0'; ++c) hash = hash * 33 + static_cast<unsigned char>(*c);
    const uint32_t buckets_count = table[0], first = table[1], bloom_words = table[2];
    if (buckets_count == 0) return 0;
    const auto* buckets = reinterpret_cast<const uint32_t*>(
        reinterpret_cast<const ElfW(Addr)*>(table + 4) + bloom_words);
    const uint32_t* chain = buckets + buckets_count;
    uint32_t index = buckets[hash % buckets_count];
    if (index < first) return 0;
    for (;; ++index) {
      const uint32_t chained = chain[index - first];
      if ((chained | 1) == (hash | 1) && defines(index)) return index;
      if (chained & 1) return 0;
    }
  }

  // The SysV hash table: [nbucket, nchain], bucket[], chain[].
  template <class Defines>
  static uint32_t SysvHashLookup(const uint32_t* table, const char* name, Defines defines) {
    uint32_t hash = 0;
    for (const char* c = name; *c != '\0'; ++c) {
      hash = (hash << 4) + static_cast<unsigned char>(*c);
      hash ^= (hash >> 24) & 0xf0;
      hash &= 0x0fffffff;
    }
    const uint32_t buckets_count = table[0];
    if (buckets_count == 0) return 0;
    const uint32_t* buckets = table + 2;
    const uint32_t* chain = buckets + buckets_count;
    for (uint32_t index = buckets[hash % buckets_count]; index != 0; index = chain[index]) {
      if (defines(index)) return index;
    }
    return 0;
  }

  static constexpr ElfW(Xword) kNoSoname = ~ElfW(Xword){0};

  const dl_phdr_info* info_;
  const ElfW(Dyn) * dynamic_ = nullptr;
  const char* strings_ = nullptr;
  const ElfW(Sym) * symbols_ = nullptr;
  const ElfW(Versym) * versions_ = nullptr;
  const uint32_t* gnu_hash_ = nullptr;
  const uint32_t* sysv_hash_ = nullptr;
  ElfW(Xword) soname_offset_ = kNoSoname;
};

struct Search {
  NewForm form;
  uintptr_t caller;
  uintptr_t self;                       // an address in librulloc.so
  uintptr_t operators[kRuntimes] = {};  // each runtime's `form`, if loaded
  Runtime first_loaded = kUnknown;      // of the runtimes that define it
  bool caller_is_rulloc = false;
  uintptr_t callers_own = 0;  // the caller's object's copy of a runtime's
  Runtime callers_runtime = kUnknown;
};

// Defined by every C++ runtime, whose operator new calls it; not by a
// program or library that merely defines operator new (a wrapper that
// forwards to the next definition, another allocator's).
constexpr const char kGetNewHandler[] = "_ZSt15get_new_handlerv";

int Visit(dl_phdr_info* info, size_t, void* data) {
  auto* search = static_cast<Search*>(data);
  const LoadedObject object(info);
  const char* name = object.Name();
  for (int r = 0; r < kRuntimes; ++r) {
    if (search->operators[r] == 0 && std::strcmp(name, kOperatorsIn[r]) == 0) {
      search->operators[r] = object.Function(kMangled[search->form]);
      if (search->operators[r] != 0 && search->first_loaded == kUnknown) {
        search->first_loaded = static_cast<Runtime>(r);
      }
    }
  }
  if (object.Contains(search->caller)) {
    search->caller_is_rulloc = object.Contains(search->self);
    if (!search->caller_is_rulloc && object.Function(kGetNewHandler) != 0) {
      search->callers_own = object.Function(kMangled[search->form]);
    }
    search->callers_runtime = RuntimeNamed(name);
    if (search->callers_runtime == kUnknown) search->callers_runtime = object.NeededRuntime();
  }
  return 0;
}

Search Walk(NewForm form, const void* caller) {
  Search search{form, reinterpret_cast<uintptr_t>(caller), reinterpret_cast<uintptr_t>(&Visit)};
  dl_iterate_phdr(Visit, &search);
  return search;
}

// The caller of the last failed operator new on this thread that came from
// outside Rulloc. A runtime's operator that Rulloc called may call Rulloc's
// operator new again (libstdc++'s new[] calls new); when Rulloc's call into
// it was not a tail call, that inner call's return address is in Rulloc.
constinit thread_local const void* outer_caller __attribute__((tls_model("initial-exec"))) =
    nullptr;

}  // namespace

void* RuntimeNew(NewForm form, const void* caller) {
  Search search = Walk(form, caller);
  if (search.caller_is_rulloc) {
    search = Walk(form, outer_caller);
  } else {
    outer_caller = caller;
  }
  // One runtime's exception thrown through code built for the other is not
  // caught there, or crashes the unwinder: the caller's first.
  if (search.callers_own != 0) return reinterpret_cast<void*>(search.callers_own);
  for (Runtime r : {search.callers_runtime, search.first_loaded}) {
    if (r != kUnknown && search.operators[r] != 0) {
      return reinterpret_cast<void*>(search.operators[r]);
    }
  }
  return nullptr;
}

}  // namespace rulloc::shim
