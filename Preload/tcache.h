// The preload library's per-thread cache of free objects (docs/preload.md, "Thread
// cache"), in front of the heap's per-CPU size-class caches: per thread and size class
// (the heap's slab classes, up to 4 KiB) a LIFO bin of free objects in thread-local
// storage. malloc pops its class's bin, free pushes onto it: neither takes a lock nor
// does an atomic operation. An empty bin is refilled, and a full one flushed by half,
// through one call into the heap that takes the cache lock once (Preload/tcache.c,
// Preload/PreloadThreadCache.swift).
//
// A binned object is still allocated in the heap's bitmap. Its first word holds the
// link to the next binned object, encoded (next ^ link secret ^ its own address, as the
// heap's free lists), its second word a key (key secret ^ its own address, as glibc's
// tcache): a free that finds the key walks that bin, and an object found there is a
// double free, reported as the heap reports one ("free: double free 0x...").
//
// The fast paths are here, inline in the shim's C names; everything else is in tcache.c.
#ifndef KMALLOC_TCACHE_H
#define KMALLOC_TCACHE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/// SlabClass.count and SlabClass.limit (kmalloc_class_table checks the count).
#define TCACHE_CLASSES 48
#define TCACHE_LIMIT 4096
#define TCACHE_GRANULES (TCACHE_LIMIT / 16 + 1)
/// Objects a bin holds at most (KMALLOC_TCACHE sets it, 0 turns the cache off), and
/// the most it may be set to.
#define TCACHE_DEFAULT_COUNT 32
#define TCACHE_MAX_COUNT 255
/// A bin of a large class holds at most this many bytes, and at least
/// TCACHE_MIN_COUNT objects.
#define TCACHE_BIN_BYTES (8 << 10)
#define TCACHE_MIN_COUNT 2

/// A thread's cache: NEW until its first call, ACTIVE, BUSY while a cache operation
/// runs (a signal handler's malloc in between goes to the heap), OFF when the cache is
/// off or the thread's exit flushed it (glibc frees thread state after the key
/// destructors: those frees go to the heap).
enum { TCACHE_NEW, TCACHE_ACTIVE, TCACHE_BUSY, TCACHE_OFF };

struct tcache {
  /// The first object of each bin, 0 when empty.
  uintptr_t head[TCACHE_CLASSES];
  uint16_t count[TCACHE_CLASSES];
  /// The sampling detector's countdown per class: at 0 the allocation comes from the
  /// pool (as the heap's per-cache countdown would have taken it).
  int32_t sample_left[TCACHE_CLASSES];
  uint8_t state;
};

extern _Thread_local struct tcache tcache_self;
/// Whether set-up turned the cache on (read-only afterwards); threads start theirs at
/// their first call. The shim tests it first, so that with the cache off its calls
/// cost one load.
extern bool tcache_enabled;
extern uint8_t tcache_class_of_granule[TCACHE_GRANULES];
extern uint16_t tcache_capacity[TCACHE_CLASSES];
extern uintptr_t tcache_link_secret, tcache_key_secret;

// Preload/PreloadThreadCache.swift.
long kmalloc_slab_class(void *pointer);

/// Set-up, once, before other threads use the heap: the class table, the secrets and
/// the thread-exit key. `max_count` 0 leaves the cache off; `sample_interval` is the
/// detector's interval (0: no detector).
void tcache_start(long max_count, long sample_interval);
/// Slow paths of tcache_malloc (past a miss of tcache_malloc_hit, which changed nothing)
/// and tcache_free.
void *tcache_malloc_miss(size_t size);
bool tcache_free_slow(void *pointer);
bool tcache_free_checked(void *pointer, unsigned size_class);
/// Whether `pointer` sits in the calling thread's bins (a use of a freed object): it is
/// then reported as "function: double free 0x...".
bool tcache_holds(void *pointer, const char *function);
/// Empties the calling thread's bins into the heap and turns its cache off (exit).
void tcache_flush_thread(void);

static inline uintptr_t tcache_link(uintptr_t next, uintptr_t at) { return next ^ tcache_link_secret ^ at; }
static inline uintptr_t tcache_key(uintptr_t at) { return tcache_key_secret ^ at; }

/// Marks the calling thread's cache busy (a signal handler's call bypasses it).
static inline void tcache_enter(struct tcache *cache) {
  cache->state = TCACHE_BUSY;
  atomic_signal_fence(memory_order_seq_cst);
}

static inline void tcache_leave(struct tcache *cache) {
  atomic_signal_fence(memory_order_seq_cst);
  cache->state = TCACHE_ACTIVE;
}

/// `tcache_malloc` when it is a plain bin hit: the object, or NULL with nothing changed
/// (the thread's cache not active, the detector's countdown due, an empty bin, a link
/// overwritten), where the caller goes on to `tcache_malloc_miss`, which handles each.
/// The head is read once the cache is busy: a signal handler's malloc cannot take it in
/// between. It calls nothing, so malloc's hit needs no stack frame.
static inline __attribute__((always_inline)) void *tcache_malloc_hit(size_t size) {
  struct tcache *cache = &tcache_self;
  unsigned size_class = tcache_class_of_granule[(size + 15) >> 4];
  int32_t left = cache->sample_left[size_class] - 1;
  if (__builtin_expect(cache->state != TCACHE_ACTIVE || left <= 0, 0)) return NULL;
  tcache_enter(cache);
  uintptr_t object = cache->head[size_class];
  uintptr_t next = object ? tcache_link(*(uintptr_t *)object, object) : 1;
  unsigned count = cache->count[size_class] - 1u;
  if (__builtin_expect((next & 15) != 0 || (next == 0) != (count == 0), 0)) {
    tcache_leave(cache);
    return NULL;
  }
  cache->sample_left[size_class] = left;
  cache->head[size_class] = next;
  cache->count[size_class] = (uint16_t)count;
  ((uintptr_t *)object)[1] = 0;
  tcache_leave(cache);
  return (void *)object;
}

/// An object for a request of `size` bytes (at most TCACHE_LIMIT) from the calling
/// thread's bin, refilled when empty, or the sampled pool object when the class's
/// countdown ran out; NULL when the caller must ask the heap (the cache is off or
/// busy, or the heap had no object).
static inline __attribute__((always_inline)) void *tcache_malloc(size_t size) {
  void *object = tcache_malloc_hit(size);
  return __builtin_expect(object != NULL, 1) ? object : tcache_malloc_miss(size);
}

/// free of `pointer` (not a pool object): true when the bin took it, or it was found in
/// the bin already and reported as a double free; false when it is no live size-class
/// object (the heap frees or reports it) or the cache is off or busy.
static inline __attribute__((always_inline)) bool tcache_free(void *pointer) {
  struct tcache *cache = &tcache_self;
  if (__builtin_expect(cache->state != TCACHE_ACTIVE, 0)) return tcache_free_slow(pointer);
  long size_class = kmalloc_slab_class(pointer);
  if (size_class < 0) return false;
  uintptr_t at = (uintptr_t)pointer;
  uintptr_t *words = pointer;
  if (__builtin_expect(words[1] == tcache_key(at) || cache->count[size_class] >= tcache_capacity[size_class], 0))
    return tcache_free_checked(pointer, (unsigned)size_class);
  tcache_enter(cache);
  words[0] = tcache_link(cache->head[size_class], at);
  words[1] = tcache_key(at);
  cache->head[size_class] = at;
  cache->count[size_class]++;
  tcache_leave(cache);
  return true;
}

#endif
