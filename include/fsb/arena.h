/* arena.h - a bump allocator for per-episode and per-step scratch.
 *
 * One region is reserved up front (virtual memory, committed on first touch) and handed
 * out by bumping an offset; fsb_arena_reset() returns everything at once, so a hot loop
 * never calls malloc and reuses the same, already-faulted pages every iteration.
 */
#ifndef FSB_ARENA_H
#define FSB_ARENA_H

#include <stddef.h>

typedef struct fsb_arena {
    unsigned char *base; /* start of the reserved region (NULL when not initialised) */
    size_t cap;          /* bytes reserved */
    size_t used;         /* bytes handed out since the last reset */
    size_t peak;         /* the largest `used` ever seen */
} fsb_arena;

/* Reserve `cap` bytes. Returns FSB_OK or FSB_ENOMEM. */
int fsb_arena_init(fsb_arena *a, size_t cap);
/* Release the region; no-op on a zeroed or freed arena. */
void fsb_arena_free(fsb_arena *a);
/* `bytes` bytes aligned to `align` (a power of two, <= 4096); NULL with FSB_ENOMEM set in
 * fsb_error_last() when the region is exhausted. Memory is not zeroed. */
void *fsb_arena_alloc(fsb_arena *a, size_t bytes, size_t align);
/* Like fsb_arena_alloc for `n` floats, 64-byte aligned. */
float *fsb_arena_floats(fsb_arena *a, size_t n);
/* The current offset, to roll back to with fsb_arena_reset_to(). */
size_t fsb_arena_mark(const fsb_arena *a);
void fsb_arena_reset_to(fsb_arena *a, size_t mark);
/* Forget every allocation (same as fsb_arena_reset_to(a, 0)). */
void fsb_arena_reset(fsb_arena *a);

#endif
