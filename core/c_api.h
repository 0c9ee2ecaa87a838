/* The C API over the process-wide allocator, with the C library's
 * contracts: nullptr with errno ENOMEM on exhaustion, EINVAL for a bad
 * alignment, calloc overflow checked. These names never replace malloc;
 * the shim does that. */
#ifndef RULLOC_CORE_C_API_H_
#define RULLOC_CORE_C_API_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

void* rulloc_malloc(size_t size);
void rulloc_free(void* ptr);
void* rulloc_calloc(size_t count, size_t size);
/* realloc(p, 0) frees p and returns NULL (glibc's behaviour);
 * realloc(NULL, n) is malloc(n). */
void* rulloc_realloc(void* ptr, size_t size);
/* Any size; alignment must be a power of two (else NULL, errno EINVAL). */
void* rulloc_aligned_alloc(size_t alignment, size_t size);
/* alignment must be a power-of-two multiple of sizeof(void*): else EINVAL
 * is returned and *out is untouched. */
int rulloc_posix_memalign(void** out, size_t alignment, size_t size);
/* As glibc: an alignment that is not a power of two is rounded up. */
void* rulloc_memalign(size_t alignment, size_t size);
size_t rulloc_usable_size(const void* ptr);
/* Frees with the size the caller knows (as sized operator delete, C23
 * free_sized). A size that cannot be the block's (larger than it, or less
 * than half of it) is reported as heap misuse: "free with a wrong size". */
void rulloc_free_sized(void* ptr, size_t size);
/* The same for an over-aligned block: only a size larger than the block is
 * caught (alignment padding makes the block bigger than the request). */
void rulloc_free_aligned_sized(void* ptr, size_t alignment, size_t size);
/* Returns every block cached by the calling thread to the shared buckets. */
void rulloc_thread_cache_flush(void);
/* Flushes the calling thread's cache and returns every empty region to the
 * OS now. Returns the bytes unmapped. */
size_t rulloc_trim(void);
/* Writes the allocator's statistics to `fd`: totals (bytes mapped,
 * committed, resident, in use; region maps and unmaps), thread caches
 * (refills, flushes), per small bucket (blocks in use, in caches, free in
 * regions; regions, bytes mapped, maps and unmaps), the large bucket and the
 * huge blocks; as text or, if `json` is nonzero, as one JSON object on one
 * line. Does not allocate. Returns 0, or -1 if a write failed. */
int rulloc_stats_write(int fd, int json);

#ifdef __cplusplus
}
#endif

#endif /* RULLOC_CORE_C_API_H_ */
