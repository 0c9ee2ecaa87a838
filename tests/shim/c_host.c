/* A C program that loads C++ plugins with RTLD_LOCAL (as Python loads
 * extension modules), all of them first, then runs each one's operator new
 * checks: c_host PLUGIN... */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char** argv) {
  enum { kMaxPlugins = 4 };
  void* plugins[kMaxPlugins];
  if (argc < 2 || argc - 1 > kMaxPlugins) return 2;
  if (dlsym(RTLD_DEFAULT, "_ZSt15get_new_handlerv") != NULL) {
    fprintf(stderr, "FAIL: the host already has a global C++ runtime\n");
    return 1;
  }
  for (int i = 1; i < argc; ++i) {
    plugins[i - 1] = dlopen(argv[i], RTLD_NOW | RTLD_LOCAL);
    if (plugins[i - 1] == NULL) {
      fprintf(stderr, "FAIL: %s\n", dlerror());
      return 1;
    }
  }
  for (int i = 1; i < argc; ++i) {
    int (*check)(void) = (int (*)(void))dlsym(plugins[i - 1], "CheckNewInPlugin");
    if (check == NULL) {
      fprintf(stderr, "FAIL: no CheckNewInPlugin in %s: %s\n", argv[i], dlerror());
      return 1;
    }
    if (check() != 0) {
      fprintf(stderr, "FAIL: the checks of %s\n", argv[i]);
      return 1;
    }
  }
  printf("C host, %d C++ plugin(s) loaded RTLD_LOCAL: operator new checks pass\n", argc - 1);
  return 0;
}
