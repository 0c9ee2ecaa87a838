/* A C program that loads a C++ plugin with RTLD_LOCAL (as Python loads
 * extension modules) and runs its operator new checks. */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  if (dlsym(RTLD_DEFAULT, "_ZSt15get_new_handlerv") != NULL) {
    fprintf(stderr, "FAIL: the host already has a global C++ runtime\n");
    return 1;
  }
  void* plugin = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (plugin == NULL) {
    fprintf(stderr, "FAIL: %s\n", dlerror());
    return 1;
  }
  int (*check)(void) = (int (*)(void))dlsym(plugin, "CheckNewInPlugin");
  if (check == NULL) {
    fprintf(stderr, "FAIL: no CheckNewInPlugin in %s: %s\n", argv[1], dlerror());
    return 1;
  }
  if (check() != 0) return 1;
  printf("C host, C++ plugin loaded RTLD_LOCAL: operator new checks pass\n");
  return 0;
}
