// glibc's compatibility entry points, served by Rulloc when it is
// preloaded: cfree (still exported for programs linked before glibc 2.26)
// and malloc_info. Exits non-zero on a failed check.
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The compat symbol an old binary refers to (no header declares it).
extern void cfree(void* p);
__asm__(".symver cfree,cfree@GLIBC_2.2.5");

#define CHECK(condition)                                              \
  do {                                                                \
    if (!(condition)) {                                               \
      fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #condition); \
      return 1;                                                       \
    }                                                                 \
  } while (0)

int main(void) {
  // glibc's cfree given a Rulloc block would abort ("invalid pointer").
  void* p = malloc(100);
  cfree(p);
  void* q = malloc(100);
  CHECK(q == p);  // the block freed last is the first reused
  free(q);

  // Rulloc's report: glibc's outer format, with no glibc heaps in it.
  char* volatile huge = malloc((size_t)16 << 20);  // (volatile: kept by the optimiser)
  CHECK(huge != NULL);
  huge[0] = 1;
  char* text = NULL;
  size_t length = 0;
  FILE* out = open_memstream(&text, &length);
  CHECK(out != NULL);
  CHECK(malloc_info(0, out) == 0);
  fclose(out);
  CHECK(strncmp(text, "<malloc version=\"1\">\n", 21) == 0);
  CHECK(strstr(text, "<total type=\"mmap\" count=\"1\" size=\"167") != NULL);
  CHECK(strstr(text, "<heap") == NULL);
  CHECK(strstr(text, "</malloc>\n") != NULL);
  free(text);
  free(huge);
  errno = 0;
  CHECK(malloc_info(1, stdout) == -1 && errno == EINVAL);
  puts("cfree and malloc_info: served by rulloc");
  return 0;
}
