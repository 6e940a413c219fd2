// A multi-threaded stress of a malloc (`scripts/realworld.py --quick` runs it with
// libkmalloc.so preloaded, and without): worker threads make random malloc, calloc,
// realloc, posix_memalign and free calls, a quarter of the blocks freed by another
// thread than the one that allocated them (through a shared exchange array), with some
// large (page-run) blocks; every block carries a pattern that is checked before it is
// freed or grown. Meanwhile one thread forks again and again (the child allocates,
// checks and frees, also from a thread of its own, then exits), and short-lived threads
// come and go. Prints one line of totals (the same on every malloc) and exits 0, or
// names what went wrong and exits 1.
//
//   stress [threads (8)] [operations per thread (1000000)] [forks (50)] [short threads (2000)]
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLOTS 1024
#define EXCHANGE 4096

struct block {
  size_t size;
  uint8_t pattern;
};

static _Atomic(uintptr_t) exchange[EXCHANGE];
static _Atomic int failures;
static _Atomic int workers_running;

static void fail(const char *what, void *pointer) {
  if (atomic_fetch_add(&failures, 1) < 20) fprintf(stderr, "stress: %s %p\n", what, pointer);
}

static uint64_t next_random(uint64_t *state) {
  *state ^= *state << 13;
  *state ^= *state >> 7;
  *state ^= *state << 17;
  return *state;
}

/// The first 16 bytes hold the size and pattern; every 64th byte and the last hold the
/// pattern.
static void fill(void *pointer, size_t size, uint8_t pattern) {
  if (size < 16) {
    memset(pointer, pattern, size);
    return;
  }
  struct block header = {size, pattern};
  memcpy(pointer, &header, sizeof header);
  for (size_t at = 64; at < size; at += 64) ((uint8_t *)pointer)[at] = pattern;
  ((uint8_t *)pointer)[size - 1] = pattern;
}

static void check(void *pointer, size_t size, uint8_t pattern, size_t checked) {
  const uint8_t *bytes = pointer;
  if (checked > size) checked = size;
  if (size < 16) {
    for (size_t at = 0; at < checked; at++)
      if (bytes[at] != pattern) return fail("small block changed", pointer);
    return;
  }
  struct block header;
  memcpy(&header, pointer, sizeof header);
  if (header.size != size || header.pattern != pattern) return fail("header changed", pointer);
  for (size_t at = 64; at < checked; at += 64)
    if (bytes[at] != pattern) return fail("block changed", pointer);
  if (checked == size && bytes[size - 1] != pattern) return fail("last byte changed", pointer);
}

static size_t random_size(uint64_t *state) {
  uint64_t r = next_random(state);
  switch (r % 100) {
  case 0: return 128 * 1024 + r % (1 << 20);  // a page run
  case 1: case 2: case 3: return 4096 + r % 60000;
  default: return 1 + (r >> 8) % ((r & 64) ? 1024 : 128);
  }
}

struct slot {
  void *pointer;
  size_t size;
  uint8_t pattern;
};

static void release(struct slot *slot) {
  check(slot->pointer, slot->size, slot->pattern, slot->size);
  free(slot->pointer);
  slot->pointer = NULL;
}

/// Puts a block on the exchange array for another thread to free (the block's header
/// says how to check it), or frees the one found there.
static void pass(struct slot *slot, uint64_t *state) {
  if (slot->size < 16) return release(slot);
  uintptr_t old = atomic_exchange(&exchange[next_random(state) % EXCHANGE], (uintptr_t)slot->pointer);
  slot->pointer = NULL;
  if (old) {
    struct block header;
    memcpy(&header, (void *)old, sizeof header);
    check((void *)old, header.size, header.pattern, header.size);
    free((void *)old);
  }
}

static void *worker(void *argument) {
  long operations = ((long *)argument)[0];
  uint64_t state = (uint64_t)((long *)argument)[1] * 0x9E3779B97F4A7C15ULL + 1;
  struct slot *slots = calloc(SLOTS, sizeof *slots);
  if (!slots) {
    fail("calloc of the slot table failed", NULL);
    return NULL;
  }
  for (long op = 0; op < operations; op++) {
    struct slot *slot = &slots[next_random(&state) % SLOTS];
    uint64_t r = next_random(&state) % 16;
    if (slot->pointer) {
      if (r < 4) {
        pass(slot, &state);
      } else if (r < 7) {
        size_t size = random_size(&state);
        check(slot->pointer, slot->size, slot->pattern, slot->size);
        void *moved = realloc(slot->pointer, size);
        if (!moved) {
          fail("realloc failed", slot->pointer);
          continue;
        }
        // The kept bytes: the old header and pattern, up to the smaller size.
        size_t kept = size < slot->size ? size : slot->size;
        if (slot->size < 16 || kept >= 16) check(moved, slot->size, slot->pattern, kept);
        slot->pointer = moved;
        slot->size = size;
        slot->pattern = (uint8_t)next_random(&state);
        fill(moved, size, slot->pattern);
      } else {
        release(slot);
      }
      continue;
    }
    size_t size = random_size(&state);
    void *pointer = NULL;
    if (r == 0) {
      pointer = calloc(1, size);
      if (pointer)
        for (size_t at = 0; at < size; at += 61)
          if (((uint8_t *)pointer)[at] != 0) {
            fail("calloc not zero", pointer);
            break;
          }
    } else if (r == 1) {
      size_t alignment = (size_t)1 << (4 + next_random(&state) % 9);
      if (posix_memalign(&pointer, alignment, size) != 0) pointer = NULL;
      if (pointer && ((uintptr_t)pointer & (alignment - 1))) fail("misaligned", pointer);
    } else {
      pointer = malloc(size);
    }
    if (!pointer) {
      fail("allocation failed", NULL);
      continue;
    }
    slot->pointer = pointer;
    slot->size = size;
    slot->pattern = (uint8_t)next_random(&state);
    fill(pointer, size, slot->pattern);
  }
  for (int index = 0; index < SLOTS; index++)
    if (slots[index].pointer) release(&slots[index]);
  free(slots);
  return NULL;
}

/// A forked child's work: blocks from this thread and from a new one, checked and freed.
static void *child_work(void *argument) {
  uint64_t state = (uintptr_t)argument | 1;
  struct slot slots[256] = {{0}};
  for (int round = 0; round < 4000; round++) {
    struct slot *slot = &slots[next_random(&state) % 256];
    if (slot->pointer) {
      release(slot);
      continue;
    }
    slot->size = random_size(&state);
    slot->pointer = malloc(slot->size);
    if (!slot->pointer) {
      fail("child: malloc failed", NULL);
      return NULL;
    }
    slot->pattern = (uint8_t)round;
    fill(slot->pointer, slot->size, slot->pattern);
  }
  for (int index = 0; index < 256; index++)
    if (slots[index].pointer) release(&slots[index]);
  return NULL;
}

static void *forker(void *argument) {
  long forks = *(long *)argument;
  for (long round = 0; round < forks && atomic_load(&workers_running) > 0; round++) {
    pid_t child = fork();
    if (child < 0) {
      fail("fork failed", NULL);
      return NULL;
    }
    if (child == 0) {
      child_work((void *)(uintptr_t)(round + 1));
      pthread_t thread;
      if (pthread_create(&thread, NULL, child_work, (void *)(uintptr_t)(round + 7)) != 0) _exit(3);
      pthread_join(thread, NULL);
      _exit(atomic_load(&failures) ? 2 : 0);
    }
    int status = 0;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "stress: forked child ended with status 0x%x\n", status);
      atomic_fetch_add(&failures, 1);
    }
  }
  return NULL;
}

static void *short_lived(void *argument) {
  void *blocks[16];
  for (int index = 0; index < 16; index++) {
    blocks[index] = malloc(16 + (size_t)index * 24);
    if (!blocks[index]) return (void *)1;
    memset(blocks[index], index, 16);
  }
  for (int index = 0; index < 16; index++) free(blocks[index]);
  return argument;
}

static void *churner(void *argument) {
  long count = *(long *)argument;
  for (long round = 0; round < count; round++) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, short_lived, NULL) != 0) {
      fail("pthread_create failed", NULL);
      return NULL;
    }
    void *result;
    pthread_join(thread, &result);
    if (result) fail("short-lived thread: malloc failed", NULL);
  }
  return NULL;
}

int main(int argc, char **argv) {
  long threads = argc > 1 ? atol(argv[1]) : 8;
  long operations = argc > 2 ? atol(argv[2]) : 1000000;
  long forks = argc > 3 ? atol(argv[3]) : 50;
  long short_threads = argc > 4 ? atol(argv[4]) : 2000;
  if (threads < 1 || threads > 256) threads = 8;
  pthread_t workers[256], fork_thread, churn_thread;
  long arguments[256][2];
  atomic_store(&workers_running, (int)threads);
  for (long index = 0; index < threads; index++) {
    arguments[index][0] = operations;
    arguments[index][1] = index + 1;
    if (pthread_create(&workers[index], NULL, worker, arguments[index]) != 0) return 1;
  }
  pthread_create(&fork_thread, NULL, forker, &forks);
  pthread_create(&churn_thread, NULL, churner, &short_threads);
  for (long index = 0; index < threads; index++) {
    pthread_join(workers[index], NULL);
    atomic_fetch_sub(&workers_running, 1);
  }
  pthread_join(fork_thread, NULL);
  pthread_join(churn_thread, NULL);
  for (int index = 0; index < EXCHANGE; index++) {
    void *pointer = (void *)atomic_load(&exchange[index]);
    if (!pointer) continue;
    struct block header;
    memcpy(&header, pointer, sizeof header);
    check(pointer, header.size, header.pattern, header.size);
    free(pointer);
  }
  int failed = atomic_load(&failures);
  printf("stress: %ld threads x %ld operations, short-lived threads %ld: %s\n", threads, operations, short_threads,
         failed ? "FAILED" : "ok");
  return failed ? 1 : 0;
}
