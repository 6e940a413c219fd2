// The per-thread cache of libkmalloc.so (Preload/tcache.h) under test
// (`make preload-tcache`, scripts/preload_tcache.py): each case runs with the cache on
// and with KMALLOC_TCACHE=0, where the heap decides everything itself, and must print
// the same lines and exit 0 both times. A line "expect: <function>: double free 0x..."
// names a report the library must write to stderr for that run (the runner checks the
// reports are exactly those); the program's own checks print "FAIL ..." and exit 1.
//
//   tcache_test double_free | cross_thread | thread_exit | fork
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

static void fail(const char *what, const void *pointer) {
  printf("FAIL %s %p\n", what, pointer);
  failures++;
}

static void expect_report(const char *function, const void *pointer) {
  printf("expect: %s: double free %p\n", function, pointer);
  fflush(stdout);
}

static void fill(unsigned char *block, size_t size, unsigned char seed) {
  for (size_t index = 0; index < size; index++) block[index] = (unsigned char)(seed + index * 7);
}

static bool intact(const unsigned char *block, size_t size, unsigned char seed) {
  for (size_t index = 0; index < size; index++)
    if (block[index] != (unsigned char)(seed + index * 7)) return false;
  return true;
}

static uint64_t next_random(uint64_t *state) {
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return *state;
}

// MARK: double_free

/// Double frees of objects that went into the bin (at its head and deeper in it), and a
/// realloc and malloc_usable_size of one: each reported, the call returning, and the
/// object not handed out twice afterwards.
static void case_double_free(void) {
  unsigned char *first = malloc(48);
  fill(first, 48, 1);
  free(first);
  free(first);
  expect_report("free", first);
  void *a = malloc(48), *b = malloc(48);
  if (a == b) fail("the same object handed out twice after a double free", a);
  printf("head: two objects after the double free are distinct\n");

  void *objects[5];
  for (int index = 0; index < 5; index++) objects[index] = malloc(100);
  for (int index = 0; index < 5; index++) free(objects[index]);
  // objects[0] lies four deep in the bin now.
  expect_report("free", objects[0]);
  free(objects[0]);
  expect_report("realloc", objects[2]);
  if (realloc(objects[2], 10) != NULL) fail("realloc of a freed object returned an object", objects[2]);
  expect_report("malloc_usable_size", objects[3]);
  if (malloc_usable_size(objects[3]) != 0) fail("malloc_usable_size of a freed object is not 0", objects[3]);
  void *again[6];
  for (int index = 0; index < 6; index++) {
    again[index] = malloc(100);
    for (int other = 0; other < index; other++)
      if (again[other] == again[index]) fail("an object handed out twice", again[index]);
  }
  printf("deep: six objects after the double frees are distinct\n");
  for (int index = 0; index < 6; index++) free(again[index]);
  free(a);
  free(b);
}

// MARK: cross_thread

#define PRODUCERS 3
#define ITEMS 60000
#define RING 256

struct ring {
  _Atomic(uintptr_t) slot[RING];
};
static struct ring rings[PRODUCERS];

/// Size and seed of an item, from its number (the consumer recomputes them).
static size_t item_size(unsigned item) { return 1 + (item * 2654435761u >> 7) % 4096; }

static void *producer(void *argument) {
  int self = (int)(intptr_t)argument;
  for (unsigned item = 0; item < ITEMS; item++) {
    size_t size = item_size(item);
    unsigned char *block = malloc(size);
    if (!block) {
      fail("malloc failed", NULL);
      return NULL;
    }
    fill(block, size, (unsigned char)item);
    _Atomic(uintptr_t) *slot = &rings[self].slot[item % RING];
    while (atomic_load(slot) != 0) sched_yield();
    atomic_store(slot, (uintptr_t)block);
  }
  return NULL;
}

static _Atomic int consumer_failures;

/// Checks and frees every item of one producer, in order, while keeping objects of its
/// own: those are checked when freed too, so an object handed out twice (one thread's
/// bin handing out what another still uses) shows as a broken pattern.
static void *consumer(void *argument) {
  int self = (int)(intptr_t)argument;
  uint64_t state = 0x9e3779b97f4a7c15ull + (uint64_t)self;
  unsigned char *own[64] = {0};
  size_t own_size[64];
  for (unsigned item = 0; item < ITEMS; item++) {
    _Atomic(uintptr_t) *slot = &rings[self].slot[item % RING];
    uintptr_t value;
    while ((value = atomic_load(slot)) == 0) sched_yield();
    atomic_store(slot, 0);
    unsigned char *block = (unsigned char *)value;
    if (!intact(block, item_size(item), (unsigned char)item)) atomic_fetch_add(&consumer_failures, 1);
    free(block);
    int pick = (int)(next_random(&state) % 64);
    if (own[pick]) {
      if (!intact(own[pick], own_size[pick], (unsigned char)pick)) atomic_fetch_add(&consumer_failures, 1);
      free(own[pick]);
    }
    own_size[pick] = 1 + next_random(&state) % 4096;
    own[pick] = malloc(own_size[pick]);
    fill(own[pick], own_size[pick], (unsigned char)pick);
  }
  for (int pick = 0; pick < 64; pick++) {
    if (own[pick] && !intact(own[pick], own_size[pick], (unsigned char)pick)) atomic_fetch_add(&consumer_failures, 1);
    free(own[pick]);
  }
  return NULL;
}

/// Objects allocated by one thread and freed by another (into the freeing thread's
/// bin, flushed to the allocating thread's slab cache), under the patterns' check.
static void case_cross_thread(void) {
  pthread_t threads[2 * PRODUCERS];
  for (int index = 0; index < PRODUCERS; index++) {
    pthread_create(&threads[index], NULL, producer, (void *)(intptr_t)index);
    pthread_create(&threads[PRODUCERS + index], NULL, consumer, (void *)(intptr_t)index);
  }
  for (int index = 0; index < 2 * PRODUCERS; index++) pthread_join(threads[index], NULL);
  if (atomic_load(&consumer_failures) != 0) fail("broken patterns across threads", NULL);
  printf("cross_thread: %d producers, %d items each, every pattern intact\n", PRODUCERS, ITEMS);
}

// MARK: thread_exit

#define EXIT_THREADS 40
#define EXIT_OBJECTS 20

static void *last_freed[EXIT_THREADS];

/// Allocates objects of several classes and frees them all (they stay in its bins), then
/// exits; the last one freed is kept for the main thread.
static void *exiting(void *argument) {
  int self = (int)(intptr_t)argument;
  void *objects[EXIT_OBJECTS * 4];
  static const size_t sizes[4] = {24, 200, 700, 3000};
  for (int index = 0; index < EXIT_OBJECTS * 4; index++) objects[index] = malloc(sizes[index % 4]);
  for (int index = 0; index < EXIT_OBJECTS * 4; index++) free(objects[index]);
  last_freed[self] = objects[EXIT_OBJECTS * 4 - 3];  // a 200-byte object, in the bin at exit
  return NULL;
}

/// Threads that exit with full bins: the bins go back to the heap (a free of one of
/// their objects afterwards is the heap's double free, as with no cache; the exit
/// line's slab_objects, compared by the runner, is the count with no cache).
static void case_thread_exit(void) {
  for (int index = 0; index < EXIT_THREADS; index++) {
    pthread_t thread;
    pthread_create(&thread, NULL, exiting, (void *)(intptr_t)index);
    pthread_join(thread, NULL);
    // Nothing is allocated between the thread's exit and this free.
    if (index % 10 == 9) {
      free(last_freed[index]);
      expect_report("free", last_freed[index]);
    }
  }
  printf("thread_exit: %d threads exited with their bins full\n", EXIT_THREADS);
}

// MARK: fork

#define FORK_WORKERS 4
#define FORKS 20
static _Atomic bool stop_workers;

static void *churn(void *argument) {
  uint64_t state = 0x1234567ull + (uint64_t)(intptr_t)argument;
  void *held[32] = {0};
  size_t held_size[32];
  while (!atomic_load(&stop_workers)) {
    int pick = (int)(next_random(&state) % 32);
    if (held[pick]) {
      if (!intact(held[pick], held_size[pick], (unsigned char)pick)) atomic_fetch_add(&consumer_failures, 1);
      free(held[pick]);
    }
    held_size[pick] = 1 + next_random(&state) % 2048;
    held[pick] = malloc(held_size[pick]);
    fill(held[pick], held_size[pick], (unsigned char)pick);
  }
  for (int pick = 0; pick < 32; pick++) free(held[pick]);
  return NULL;
}

static void *child_thread(void *argument) {
  (void)argument;
  for (int round = 0; round < 2000; round++) {
    size_t size = 1 + (size_t)round % 3000;
    unsigned char *block = malloc(size);
    fill(block, size, (unsigned char)round);
    if (!intact(block, size, (unsigned char)round)) return (void *)1;
    free(block);
  }
  return NULL;
}

/// The forked child of a threaded process: the objects its parent thread held at the
/// fork are intact and its own, the objects that thread had just freed (in its bins)
/// are handed out once each, and two threads of its own allocate and exit.
static int child_work(unsigned char **live, unsigned char **freed, int count) {
  int bad = 0;
  unsigned char *fresh[64];
  for (int index = 0; index < count; index++) {
    fresh[index] = malloc(64);
    fill(fresh[index], 64, (unsigned char)(200 + index));
  }
  for (int index = 0; index < count; index++)
    if (!intact(live[index], 64, (unsigned char)index)) bad++;
  for (int index = 0; index < count; index++)
    for (int other = 0; other < count; other++)
      if (fresh[index] == live[other]) bad++;
  for (int index = 0; index < count; index++) {
    if (!intact(fresh[index], 64, (unsigned char)(200 + index))) bad++;
    free(fresh[index]);
    free(live[index]);
  }
  (void)freed;
  pthread_t threads[2];
  for (int index = 0; index < 2; index++) pthread_create(&threads[index], NULL, child_thread, NULL);
  for (int index = 0; index < 2; index++) {
    void *result;
    pthread_join(threads[index], &result);
    if (result) bad++;
  }
  return bad;
}

static void case_fork(void) {
  pthread_t workers[FORK_WORKERS];
  for (int index = 0; index < FORK_WORKERS; index++) pthread_create(&workers[index], NULL, churn, (void *)(intptr_t)index);
  int children_failed = 0;
  for (int round = 0; round < FORKS; round++) {
    enum { COUNT = 24 };
    unsigned char *live[COUNT], *freed[COUNT];
    for (int index = 0; index < COUNT; index++) {
      live[index] = malloc(64);
      fill(live[index], 64, (unsigned char)index);
      freed[index] = malloc(64);
    }
    for (int index = 0; index < COUNT; index++) free(freed[index]);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) _exit(child_work(live, freed, COUNT) == 0 ? 0 : 1);
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) children_failed++;
    for (int index = 0; index < COUNT; index++) {
      if (!intact(live[index], 64, (unsigned char)index)) fail("a parent object changed across a fork", live[index]);
      free(live[index]);
    }
  }
  atomic_store(&stop_workers, true);
  for (int index = 0; index < FORK_WORKERS; index++) pthread_join(workers[index], NULL);
  if (children_failed) fail("forked children failed", NULL);
  if (atomic_load(&consumer_failures) != 0) fail("broken patterns in the parent's threads", NULL);
  printf("fork: %d forks with %d threads running, every child clean\n", FORKS, FORK_WORKERS);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char *name = argc > 1 ? argv[1] : "";
  if (strcmp(name, "double_free") == 0) {
    case_double_free();
  } else if (strcmp(name, "cross_thread") == 0) {
    case_cross_thread();
  } else if (strcmp(name, "thread_exit") == 0) {
    case_thread_exit();
  } else if (strcmp(name, "fork") == 0) {
    case_fork();
  } else {
    fprintf(stderr, "usage: tcache_test double_free | cross_thread | thread_exit | fork\n");
    return 2;
  }
  return failures == 0 ? 0 : 1;
}
