// The per-thread cache's slow paths (the fast ones are inline in Preload/tcache.h):
// set-up, a thread's first call, refilling an empty bin and flushing a full one in one
// heap call each, the double-free check, sampling, and emptying a thread's bins when it
// exits. See tcache.h and docs/preload.md, "Thread cache".
#define _GNU_SOURCE
#include "tcache.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "kmalloc_preload.h"

// Preload/PreloadThreadCache.swift.
long kmalloc_take(long size_class, void **buffer, long count);
long kmalloc_return(void *const *objects, long count);
void *kmalloc_sample_allocate(long size);
long kmalloc_class_table(uint8_t *class_of_granule, long granules, int32_t *object_size, long classes);

_Thread_local struct tcache tcache_self;
uint8_t tcache_class_of_granule[TCACHE_GRANULES];
uint16_t tcache_capacity[TCACHE_CLASSES];
uintptr_t tcache_link_secret, tcache_key_secret;

bool tcache_enabled;
/// The detector's interval (0: no detector): each thread's countdowns start there.
static long sample_interval;
/// The key whose destructor empties an exiting thread's bins.
static pthread_key_t exit_key;

static void report(const char *function, const char *reason, uintptr_t address) {
  kmalloc_report((const uint8_t *)function, (long)strlen(function), (const uint8_t *)reason, (long)strlen(reason), address);
}

/// A countdown's start: the interval, or never with no detector.
static int32_t countdown_start(void) { return sample_interval > 0 && sample_interval < INT32_MAX ? (int32_t)sample_interval : INT32_MAX; }

/// SplitMix64's finaliser (as SlabCache.mix).
static uint64_t mix(uint64_t value) {
  value += 0x9E3779B97F4A7C15ull;
  value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9ull;
  value = (value ^ (value >> 27)) * 0x94D049BB133111EBull;
  return value ^ (value >> 31);
}

static void thread_exit(void *value);

void tcache_start(long max_count, long interval) {
  if (max_count <= 0) return;
  if (max_count > TCACHE_MAX_COUNT) max_count = TCACHE_MAX_COUNT;
  int32_t sizes[TCACHE_CLASSES];
  if (kmalloc_class_table(tcache_class_of_granule, TCACHE_GRANULES, sizes, TCACHE_CLASSES) != TCACHE_CLASSES) return;
  for (int size_class = 0; size_class < TCACHE_CLASSES; size_class++) {
    long count = TCACHE_BIN_BYTES / sizes[size_class];
    if (count < TCACHE_MIN_COUNT) count = TCACHE_MIN_COUNT;
    if (count > max_count) count = max_count;
    tcache_capacity[size_class] = (uint16_t)count;
  }
  uint64_t seeds[2] = {0, 0};
  if (getrandom(seeds, sizeof seeds, GRND_NONBLOCK) != (ssize_t)sizeof seeds) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    seeds[0] = (uint64_t)now.tv_nsec ^ (uint64_t)now.tv_sec << 32 ^ (uint64_t)(uintptr_t)&now;
    seeds[1] = (uint64_t)getpid() ^ (uint64_t)(uintptr_t)&tcache_self;
  }
  // Never 0: a key of 0 ^ address would be the address itself.
  tcache_link_secret = (uintptr_t)mix(seeds[0]) | 1;
  tcache_key_secret = (uintptr_t)mix(seeds[1] ^ 0x746361636865ull) | 1;
  if (pthread_key_create(&exit_key, thread_exit) != 0) return;
  sample_interval = interval;
  tcache_enabled = true;
}

/// A thread's first call: its countdowns, and the key that flushes its bins at exit.
/// False when the cache stays off for this thread.
static bool thread_start(struct tcache *cache) {
  if (!tcache_enabled) {
    cache->state = TCACHE_OFF;
    return false;
  }
  // Busy: pthread_setspecific may allocate (keys past the first 32), and that call
  // goes to the heap.
  cache->state = TCACHE_BUSY;
  int32_t start = countdown_start();
  for (int size_class = 0; size_class < TCACHE_CLASSES; size_class++) cache->sample_left[size_class] = start;
  if (pthread_setspecific(exit_key, (void *)1) != 0) {
    cache->state = TCACHE_OFF;
    return false;
  }
  cache->state = TCACHE_ACTIVE;
  return true;
}

static uintptr_t tcache_cut(unsigned size_class, uintptr_t object) {
  report("malloc", "free-list link overwritten (write after free)", object);
  (void)size_class;
  return 0;
}

/// Pushes `object` (a live size-class object of `size_class`) onto its bin. Busy.
static void push(struct tcache *cache, unsigned size_class, uintptr_t object) {
  uintptr_t *words = (uintptr_t *)object;
  words[0] = tcache_link(cache->head[size_class], object);
  words[1] = tcache_key(object);
  cache->head[size_class] = object;
  cache->count[size_class]++;
}

/// Gives the first `count` objects of bin `size_class` back to the heap in one call,
/// their keys cleared first (so no object the heap holds carries one). A link found
/// overwritten ends the bin there: it is reported, and the objects behind it stay
/// allocated. Busy.
static void flush(struct tcache *cache, unsigned size_class, unsigned count) {
  void *objects[TCACHE_MAX_COUNT + 1];
  unsigned taken = 0;
  uintptr_t object = cache->head[size_class];
  unsigned left = cache->count[size_class];
  while (taken < count && object != 0) {
    uintptr_t next = tcache_link(*(uintptr_t *)object, object);
    ((uintptr_t *)object)[1] = 0;
    objects[taken++] = (void *)object;
    left--;
    if ((next & 15) != 0 || (next == 0) != (left == 0)) {
      tcache_cut(size_class, object);
      next = 0;
      left = 0;
    }
    object = next;
  }
  cache->head[size_class] = object;
  cache->count[size_class] = (uint16_t)left;
  if (taken > 0) kmalloc_return(objects, taken);
}

/// Refills the empty bin `size_class` with half its capacity in one heap call and
/// returns one of the objects, or 0 when the heap had none. Busy.
static uintptr_t refill(struct tcache *cache, unsigned size_class) {
  void *objects[TCACHE_MAX_COUNT];
  long want = tcache_capacity[size_class] / 2;
  if (want < 1) want = 1;
  long got = kmalloc_take(size_class, objects, want);
  if (got <= 0) return 0;
  // In reverse: the first the heap handed out is handed out first.
  for (long index = got - 1; index >= 1; index--) push(cache, size_class, (uintptr_t)objects[index]);
  return (uintptr_t)objects[0];
}

static void *tcache_malloc_slow(size_t size, unsigned size_class, bool counted) {
  struct tcache *cache = &tcache_self;
  if (!counted) {
    if (cache->state != TCACHE_NEW || !thread_start(cache)) return NULL;
    cache->sample_left[size_class]--;
  }
  tcache_enter(cache);
  uintptr_t object = 0;
  if (cache->sample_left[size_class] <= 0) {
    cache->sample_left[size_class] = countdown_start();
    if (sample_interval > 0) object = (uintptr_t)kmalloc_sample_allocate((long)size);
  }
  if (object == 0 && cache->head[size_class] != 0) {
    object = cache->head[size_class];
    uintptr_t next = tcache_link(*(uintptr_t *)object, object);
    unsigned count = cache->count[size_class] - 1u;
    if ((next & 15) != 0 || (next == 0) != (count == 0)) {
      next = tcache_cut(size_class, object);
      count = 0;
    }
    cache->head[size_class] = next;
    cache->count[size_class] = (uint16_t)count;
    ((uintptr_t *)object)[1] = 0;
  } else if (object == 0) {
    object = refill(cache, size_class);
  }
  tcache_leave(cache);
  return (void *)object;
}

void *tcache_malloc_miss(size_t size) {
  struct tcache *cache = &tcache_self;
  unsigned size_class = tcache_class_of_granule[(size + 15) >> 4];
  if (cache->state != TCACHE_ACTIVE) return tcache_malloc_slow(size, size_class, false);
  cache->sample_left[size_class]--;
  return tcache_malloc_slow(size, size_class, true);
}

bool tcache_free_slow(void *pointer) {
  struct tcache *cache = &tcache_self;
  if (cache->state != TCACHE_NEW || !thread_start(cache)) return false;
  return tcache_free(pointer);
}

/// Whether `object` is in bin `size_class` (a walk of at most its count).
static bool bin_holds(struct tcache *cache, unsigned size_class, uintptr_t object) {
  uintptr_t entry = cache->head[size_class];
  for (unsigned index = 0; index < cache->count[size_class] && entry != 0; index++) {
    if (entry == object) return true;
    entry = tcache_link(*(uintptr_t *)entry, entry);
    if ((entry & 15) != 0) return false;
  }
  return false;
}

bool tcache_free_checked(void *pointer, unsigned size_class) {
  struct tcache *cache = &tcache_self;
  uintptr_t at = (uintptr_t)pointer;
  tcache_enter(cache);
  // The key: most likely in this bin already. Otherwise (a program's data equal to the
  // key, or an object in another thread's bin) the free goes on as any other.
  if (((uintptr_t *)pointer)[1] == tcache_key(at) && bin_holds(cache, size_class, at)) {
    tcache_leave(cache);
    report("free", "double free", at);
    return true;
  }
  if (cache->count[size_class] >= tcache_capacity[size_class]) flush(cache, size_class, (cache->count[size_class] + 1u) / 2);
  push(cache, size_class, at);
  tcache_leave(cache);
  return true;
}

bool tcache_holds(void *pointer, const char *function) {
  struct tcache *cache = &tcache_self;
  if (cache->state != TCACHE_ACTIVE) return false;
  long size_class = kmalloc_slab_class(pointer);
  if (size_class < 0 || ((uintptr_t *)pointer)[1] != tcache_key((uintptr_t)pointer)) return false;
  tcache_enter(cache);
  bool held = bin_holds(cache, (unsigned)size_class, (uintptr_t)pointer);
  tcache_leave(cache);
  if (held) report(function, "double free", (uintptr_t)pointer);
  return held;
}

/// Empties every bin of the calling thread and turns its cache off.
static void empty_all(struct tcache *cache) {
  cache->state = TCACHE_BUSY;
  atomic_signal_fence(memory_order_seq_cst);
  for (unsigned size_class = 0; size_class < TCACHE_CLASSES; size_class++)
  {
    while (cache->count[size_class] > 0 && cache->head[size_class] != 0) flush(cache, size_class, TCACHE_MAX_COUNT);
    cache->head[size_class] = 0;
    cache->count[size_class] = 0;
  }
  atomic_signal_fence(memory_order_seq_cst);
  cache->state = TCACHE_OFF;
}

/// The thread-exit key's destructor: the thread's bins go back to the heap, and its
/// later calls (glibc's own frees of thread state) go to the heap directly.
static void thread_exit(void *value) {
  (void)value;
  struct tcache *cache = &tcache_self;
  if (cache->state == TCACHE_ACTIVE) empty_all(cache);
}

void tcache_flush_thread(void) {
  struct tcache *cache = &tcache_self;
  if (cache->state == TCACHE_ACTIVE) empty_all(cache);
}
