/* arena.c - bump allocator over one mmap'd region (see include/fsb/arena.h).
 * Invariant: base <= base + used <= base + cap; peak >= used.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE */
#include "fsb/arena.h"
#include "fsb/status.h"

#include <assert.h>
#include <stdint.h>
#include <sys/mman.h>

int fsb_arena_init(fsb_arena *a, size_t cap)
{
    a->base = NULL;
    a->cap = a->used = a->peak = 0;
    if (cap == 0) return FSB_OK;
    void *p =
        mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return fsb_error(FSB_ENOMEM, "arena: cannot reserve %zu bytes", cap);
    a->base = p;
    a->cap = cap;
    return FSB_OK;
}

void fsb_arena_free(fsb_arena *a)
{
    if (a == NULL || a->base == NULL) return;
    munmap(a->base, a->cap);
    a->base = NULL;
    a->cap = a->used = a->peak = 0;
}

void *fsb_arena_alloc(fsb_arena *a, size_t bytes, size_t align)
{
    assert(align && (align & (align - 1)) == 0 && align <= 4096);
    size_t start = (a->used + align - 1) & ~(align - 1);
    if (start > a->cap || bytes > a->cap - start) {
        fsb_error(FSB_ENOMEM, "arena: %zu bytes requested, %zu of %zu free", bytes,
                  a->cap - a->used, a->cap);
        return NULL;
    }
    a->used = start + bytes;
    if (a->used > a->peak) a->peak = a->used;
    return a->base + start;
}

float *fsb_arena_floats(fsb_arena *a, size_t n)
{
    return fsb_arena_alloc(a, n * sizeof(float), 64);
}

size_t fsb_arena_mark(const fsb_arena *a)
{
    return a->used;
}

void fsb_arena_reset_to(fsb_arena *a, size_t mark)
{
    assert(mark <= a->used);
    a->used = mark;
}

void fsb_arena_reset(fsb_arena *a)
{
    a->used = 0;
}
