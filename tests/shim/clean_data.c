// With librulloc.so preloaded: a program that allocates from a few size
// classes and trims leaves most of the library's .data shared with the
// file (not copied), as the process allocator's buckets there hold no
// load-time relocation, and a purge or a statistics read skips the buckets
// that never had a region. Exits non-zero if 2/3 or more of that mapping's
// pages are copies.
//
// A copied page is an anonymous page in the file mapping (/proc/self/
// pagemap); smaps' Private_Dirty would also count the file's own pages
// while they are dirty in the page cache, as right after a build.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
  const long page = sysconf(_SC_PAGESIZE);
  if (page != 4096) {  // .data would be a handful of pages
    printf("skipped: pages of %ld bytes\n", page);
    return 0;
  }
  // One CPU, so one arena's buckets (each CPU's arena has its own).
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(sched_getcpu() < 0 ? 0 : sched_getcpu(), &one);
  sched_setaffinity(0, sizeof one, &one);

  void* blocks[600];
  for (int i = 0; i < 600; ++i) blocks[i] = malloc(16 + 16 * (i % 3));
  for (int i = 0; i < 600; ++i) free(blocks[i]);
  malloc_trim(0);  // a purge over every bucket
  struct mallinfo2 info2 = mallinfo2();  // statistics of every bucket
  (void)info2;

  void* rulloc_malloc = dlsym(RTLD_DEFAULT, "rulloc_malloc");
  Dl_info info;
  char library[PATH_MAX];
  if (rulloc_malloc == NULL || dladdr(rulloc_malloc, &info) == 0 ||
      realpath(info.dli_fname, library) == NULL) {
    fprintf(stderr, "no librulloc.so: run with it preloaded\n");
    return 1;
  }
  FILE* maps = fopen("/proc/self/maps", "r");
  if (maps == NULL) {
    perror("/proc/self/maps");
    return 1;
  }
  char line[PATH_MAX + 128];
  unsigned long from = 0, to = 0;
  while (fgets(line, sizeof line, maps)) {
    unsigned long a, z;
    char perms[8];
    if (sscanf(line, "%lx-%lx %7s", &a, &z, perms) == 3 && strcmp(perms, "rw-p") == 0 &&
        strstr(line, library) != NULL) {
      from = a;
      to = z;
    }
  }
  fclose(maps);
  const int pagemap = open("/proc/self/pagemap", O_RDONLY);
  if (from == 0 || pagemap < 0) {
    fprintf(stderr, from == 0 ? "no writable mapping of %s\n" : "no /proc/self/pagemap (%s)\n",
            library);
    return 1;
  }
  unsigned long pages = 0, present_pages = 0, copied = 0;
  for (unsigned long at = from; at < to; at += page, ++pages) {
    uint64_t entry = 0;
    if (pread(pagemap, &entry, sizeof entry, at / page * sizeof entry) != sizeof entry) {
      perror("/proc/self/pagemap");
      return 1;
    }
    const int present = (entry >> 63) & 1, file_page = (entry >> 61) & 1;
    present_pages += present;
    if (present && !file_page) {
      ++copied;
      printf("copied: offset %#lx\n", at - (unsigned long)info.dli_fbase);
    }
  }
  close(pagemap);
  printf("librulloc.so's data: %lu of %lu pages copied\n", copied, pages);
  // Its relocations are always written: none copied means pagemap hides
  // its flags here, and the count means nothing.
  if (present_pages == 0 || copied == 0) {
    fprintf(stderr, "FAIL: pagemap shows no copied page (flags hidden?)\n");
    return 1;
  }
  if (pages == 0 || copied * 3 >= pages * 2) {
    fprintf(stderr, "FAIL: too much of librulloc.so's .data is copied\n");
    return 1;
  }
  return 0;
}
