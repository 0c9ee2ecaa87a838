// Another allocator's operator new, preloaded after librulloc.so by
// preloaded_new_test.sh: it comes next in symbol lookup order, so a failure
// path that asked for the "next" definition would land here and abort.
#include <unistd.h>

#include <cstdlib>
#include <new>

namespace {
[[noreturn]] void Called() {
  static const char kLine[] = "FAIL: another library's operator new was called\n";
  ssize_t ignored = write(STDERR_FILENO, kLine, sizeof(kLine) - 1);
  (void)ignored;
  std::abort();
}
}  // namespace

void* operator new(size_t) { Called(); }
void* operator new[](size_t) { Called(); }
void* operator new(size_t, const std::nothrow_t&) noexcept { Called(); }
void* operator new[](size_t, const std::nothrow_t&) noexcept { Called(); }
void* operator new(size_t, std::align_val_t) { Called(); }
void* operator new[](size_t, std::align_val_t) { Called(); }
void* operator new(size_t, std::align_val_t, const std::nothrow_t&) noexcept { Called(); }
void* operator new[](size_t, std::align_val_t, const std::nothrow_t&) noexcept { Called(); }
