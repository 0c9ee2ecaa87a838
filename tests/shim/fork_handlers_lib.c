// A library that registers fork handlers from its constructor, as some
// libraries do, each of which allocates: a large block (its bucket's lock)
// and a small one. Its constructor runs before the program's, and before
// Rulloc's unless Rulloc starts first (shim/start.h).
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

int fork_handler_calls = 0;  // handler calls whose allocations succeeded

static void AllocateInHandler(void) {
  char* large = malloc(100000);
  char* small = malloc(64);
  if (large != NULL && small != NULL) {
    memset(large, 1, 100000);
    memset(small, 1, 64);
    ++fork_handler_calls;
  }
  free(small);
  free(large);
}

__attribute__((constructor)) static void RegisterForkHandlers(void) {
  pthread_atfork(AllocateInHandler, AllocateInHandler, AllocateInHandler);
}
