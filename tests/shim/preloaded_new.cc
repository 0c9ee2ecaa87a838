// operator new under LD_PRELOAD=librulloc.so, which has no C++ runtime of
// its own: when memory runs out, the program's runtime calls the
// new-handler and throws std::bad_alloc (or, for the nothrow forms,
// returns nullptr) by the standard's rules. Exits non-zero, naming the
// check, on any difference. Run by preloaded_new_test.sh.
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <new>

namespace {

int failures = 0;
void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "FAIL: %s\n", what);
    ++failures;
  }
}

int handler_calls = 0;
void CountingHandler() {
  if (++handler_calls == 3) std::set_new_handler(nullptr);
}
void ThrowingHandler() { throw std::bad_alloc(); }

template <class F>
bool ThrowsBadAlloc(F f) {
  try {
    f();
  } catch (const std::bad_alloc&) {
    return true;
  }
  return false;
}

// Read at run time, and the results kept: the compiler may reason about an
// allocation of a known size, and drop one whose result is unused.
volatile size_t too_much = SIZE_MAX / 2;
void* volatile sink;
volatile size_t almost_all = SIZE_MAX - 10;

// True if the program's definition of `mangled` is librulloc.so's.
bool FromRulloc(const char* mangled) {
  Dl_info info;
  void* fn = dlsym(RTLD_DEFAULT, mangled);
  return fn != nullptr && dladdr(fn, &info) != 0 && info.dli_fname != nullptr &&
         std::strstr(info.dli_fname, "librulloc") != nullptr;
}

}  // namespace

// preloaded_new [PLUGIN]: PLUGIN, a C++ plugin built against the other
// runtime (libc++), is loaded RTLD_LOCAL and its checks run too.
int main(int argc, char** argv) {
  Check(dlsym(RTLD_DEFAULT, "rulloc_malloc") != nullptr, "Rulloc is preloaded");
  if (argc == 2) {
    void* plugin = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    auto check = plugin != nullptr ? reinterpret_cast<int (*)()>(dlsym(plugin, "CheckNewInPlugin"))
                                   : nullptr;
    Check(check != nullptr && check() == 0, "the plugin's checks");
  }
  for (const char* mangled :
       {"_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t", "_ZnwmSt11align_val_t",
        "_ZnamSt11align_val_t", "_ZnwmSt11align_val_tRKSt9nothrow_t",
        "_ZnamSt11align_val_tRKSt9nothrow_t"}) {
    if (!FromRulloc(mangled)) {
      std::fprintf(stderr, "FAIL: %s is not librulloc.so's\n", mangled);
      ++failures;
    }
  }
  Check(ThrowsBadAlloc([] { sink = ::operator new(too_much); }), "new throws bad_alloc");
  Check(ThrowsBadAlloc([] { sink = ::operator new[](too_much); }), "new[] throws bad_alloc");
  Check(ThrowsBadAlloc([] { sink = ::operator new (too_much, std::align_val_t{64}); }),
        "aligned new throws bad_alloc");
  Check(::operator new(too_much, std::nothrow) == nullptr, "nothrow new returns null");
  Check(::operator new[](too_much, std::nothrow) == nullptr, "nothrow new[] returns null");
  Check(::operator new (too_much, std::align_val_t{64}, std::nothrow) == nullptr,
        "aligned nothrow new returns null");

  // Sizes that the alignment would round past SIZE_MAX: no tiny block.
  Check(ThrowsBadAlloc([] { sink = ::operator new[](almost_all, std::align_val_t{64}); }),
        "aligned new[] of SIZE_MAX - 10 throws bad_alloc");
  Check(::operator new (almost_all, std::align_val_t{64}, std::nothrow) == nullptr,
        "aligned nothrow new of SIZE_MAX - 10 returns null");

  for (int form = 0; form < 3; ++form) {
    handler_calls = 0;
    std::set_new_handler(CountingHandler);
    Check(ThrowsBadAlloc([form] {
            if (form == 0) sink = ::operator new(too_much);
            if (form == 1) sink = ::operator new[](too_much);
            if (form == 2) sink = ::operator new[](too_much, std::align_val_t{64});
          }),
          "new with a handler throws");
    Check(handler_calls == 3, "the handler is called until it uninstalls itself");
  }

  // A handler that throws: the nothrow forms still return null.
  std::set_new_handler(ThrowingHandler);
  Check(::operator new(too_much, std::nothrow) == nullptr, "nothrow new, throwing handler");
  Check(::operator new[](too_much, std::align_val_t{64}, std::nothrow) == nullptr,
        "aligned nothrow new[], throwing handler");
  std::set_new_handler(nullptr);

  void* p = ::operator new (100, std::align_val_t{256});
  Check(reinterpret_cast<uintptr_t>(p) % 256 == 0, "aligned new honours the alignment");
  ::operator delete (p, std::align_val_t{256});
  auto* values = new long[10];
  delete[] values;
  if (failures == 0) std::printf("operator new under the preloaded library: all checks pass\n");
  return failures == 0 ? 0 : 1;
}
