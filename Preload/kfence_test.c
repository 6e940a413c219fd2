// Planted memory bugs for the preload library's sampling detector (scripts/preload_kfence.py
// runs each with KMALLOC_SAMPLE=1 and checks the report), and clean programs that must
// run without one.
//
//   kfence_test CASE        one case (kfence_test list: every name)
//
// Built with -O0 -rdynamic: the bugs stay as written, and backtrace_symbols_fd names the
// case functions in the report's stacks. With KMALLOC_SAMPLE=1 every allocation up to a
// page comes from the pool while it has a free slot. An even slot puts its object flush
// against the page's end (an overflow faults at once), an odd slot at the page's start
// (an underflow faults, an overflow lands on canary bytes), so a case that needs one
// placement allocates until it gets it (PLACED), keeping the others live. Exit 3: no
// pool object came (the detector is off); 4: the bug went unnoticed.
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096UL
#define TRIES 64
#define CASE __attribute__((noinline)) void

enum { END, START };

/// Whether `pointer`, an object spanning `extent` bytes (its size rounded up to its
/// alignment), sits at its page's end or start.
static int placed(const void *pointer, size_t extent, int where) {
  uintptr_t address = (uintptr_t)pointer;
  if (!pointer) return 0;
  return where == END ? (address + extent) % PAGE == 0 : address % PAGE == 0;
}

static void no_pool_object(void) {
  fprintf(stderr, "kfence_test: no pool object came (KMALLOC_SAMPLE=1 and the library preloaded?)\n");
  exit(3);
}

/// `expression` (an allocation) evaluated until its result is placed as asked.
#define PLACED(expression, extent, where)                               \
  ({                                                                    \
    char *found_ = NULL;                                                \
    for (int try_ = 0; try_ < TRIES && !found_; try_++) {               \
      char *object_ = (char *)(expression);                             \
      if (placed(object_, (extent), (where))) found_ = object_;         \
    }                                                                   \
    if (!found_) no_pool_object();                                      \
    found_;                                                             \
  })

static void unnoticed(void) {
  fprintf(stderr, "kfence_test: the bug went unnoticed\n");
  exit(4);
}

static volatile char sink;

// MARK: Out of bounds

CASE case_oob_write_right(void) {
  volatile char *p = PLACED(malloc(32), 32, END);
  p[32] = 1;
}

CASE case_oob_read_right(void) {
  volatile char *p = PLACED(malloc(48), 48, END);
  sink = p[48];
}

CASE case_oob_write_left(void) {
  volatile char *p = PLACED(malloc(40), 48, START);
  p[-1] = 1;
}

CASE case_oob_read_left(void) {
  volatile char *p = PLACED(malloc(24), 32, START);
  sink = p[-8];
}

CASE case_oob_write_far(void) {
  volatile char *p = PLACED(malloc(64), 64, END);
  p[64 + 1000] = 1;
}

CASE case_oob_write_memset(void) {
  char *p = PLACED(malloc(80), 80, END);
  volatile size_t length = 81;
  memset(p, 0, length);
}

CASE case_oob_read_strlen(void) {
  char *p = PLACED(malloc(16), 16, END);
  memset(p, 'a', 16);  // no terminating zero
  sink = (char)strlen(p);
}

CASE case_oob_write_strcpy(void) {
  char *p = PLACED(malloc(16), 16, END);
  volatile const char *text = "0123456789abcdef";  // 17 bytes with its zero
  strcpy(p, (const char *)text);
}

CASE case_calloc_overflow(void) {
  volatile long *a = (volatile long *)PLACED(calloc(8, sizeof(long)), 64, END);
  a[8] = 1;
}

CASE case_posix_memalign_overflow(void) {
  void *q = NULL;
  volatile char *p = PLACED(posix_memalign(&q, 64, 128) == 0 ? q : NULL, 128, END);
  p[128] = 1;
}

CASE case_valloc_underflow(void) {
  volatile char *p = PLACED(valloc(100), PAGE, START);
  sink = p[-1];
}

CASE case_pvalloc_overflow(void) {
  volatile char *p = PLACED(pvalloc(100), PAGE, START);
  p[PAGE] = 1;
}

CASE case_reallocarray_read(void) {
  volatile char *p = PLACED(reallocarray(NULL, 6, 16), 96, END);
  sink = p[96];
}

CASE case_realloc_overflow(void) {
  volatile char *p = PLACED(realloc(malloc(10), 96), 96, END);
  p[96] = 1;
}

// MARK: Use after free

CASE case_uaf_read(void) {
  volatile char *p = malloc(100);
  free((void *)p);
  sink = p[0];
}

CASE case_uaf_write(void) {
  volatile char *p = malloc(100);
  free((void *)p);
  p[50] = 1;
}

CASE case_uaf_read_memcpy(void) {
  char *p = malloc(64);
  char copy[64];
  free(p);
  memcpy(copy, p, sizeof copy);
  sink = copy[0];
}

__attribute__((noinline)) void *free_it(void *pointer) {
  free(pointer);
  return NULL;
}

CASE case_uaf_write_other_thread(void) {
  volatile char *p = malloc(72);
  pthread_t thread;
  pthread_create(&thread, NULL, free_it, (void *)p);
  pthread_join(thread, NULL);
  p[8] = 1;
}

CASE case_realloc_old_pointer(void) {
  volatile char *p = malloc(32);
  char *q = realloc((void *)p, 64);
  sink = q[0];
  sink = p[0];
}

CASE case_aligned_alloc_uaf(void) {
  volatile char *p = aligned_alloc(256, 256);
  free((void *)p);
  sink = p[255];
}

CASE case_usable_size_freed(void) {
  void *p = malloc(50);
  free(p);
  sink = (char)malloc_usable_size(p);
}

// MARK: Bad frees

CASE case_double_free(void) {
  void *p = malloc(64);
  free(p);
  free(p);
}

CASE case_double_free_later(void) {
  void *p = malloc(56);
  free(p);
  for (int i = 0; i < 20; i++) free(malloc(56));  // the quarantine keeps p's record
  free(p);
}

CASE case_memalign_double_free(void) {
  void *p = memalign(128, 100);
  free(p);
  free(p);
}

CASE case_free_after_realloc(void) {
  void *p = malloc(24);
  void *q = realloc(p, 48);
  sink = *(char *)q;
  free(p);
}

CASE case_realloc_freed(void) {
  void *p = malloc(30);
  free(p);
  sink = (char)(uintptr_t)realloc(p, 60);
}

CASE case_invalid_free_interior(void) {
  char *p = malloc(64);
  free(p + 16);
}

CASE case_invalid_free_guard(void) {
  char *p = PLACED(malloc(64), 64, START);
  free(p - 16);  // the guard page before it
}

// MARK: Canary (found when the object is freed)

CASE case_canary_right(void) {
  volatile char *p = PLACED(malloc(13), 16, END);
  p[13] = 1;  // between the size and the 16-byte rounded end
  free((void *)p);
}

CASE case_canary_left(void) {
  volatile char *p = PLACED(malloc(32), 32, END);
  p[-1] = 1;  // before an object at the page's end: canary bytes
  free((void *)p);
}

CASE case_canary_right_start(void) {
  volatile char *p = PLACED(malloc(40), 48, START);
  p[40 + 100] = 1;  // past an object at the page's start: canary bytes
  free((void *)p);
}

CASE case_calloc_canary(void) {
  volatile int *a = (volatile int *)PLACED(calloc(10, sizeof(int)), 48, END);
  a[10] = 1;
  free((void *)a);
}

// MARK: Clean programs

static void *churn(void *argument) {
  unsigned seed = (unsigned)(uintptr_t)argument;
  char *kept[64] = {0};
  for (int i = 0; i < 20000; i++) {
    int slot = (int)(rand_r(&seed) % 64);
    size_t size = 1 + rand_r(&seed) % 3000;
    if (kept[slot]) {
      size_t have = malloc_usable_size(kept[slot]);
      for (size_t b = 0; b < have; b++)
        if (kept[slot][b] != (char)slot) abort();
      if (i % 3 == 0) {
        kept[slot] = realloc(kept[slot], size);
        memset(kept[slot], slot, malloc_usable_size(kept[slot]));
        continue;
      }
      free(kept[slot]);
      kept[slot] = NULL;
    }
    switch (i % 4) {
    case 0: kept[slot] = malloc(size); break;
    case 1: kept[slot] = calloc(1, size); break;
    case 2: kept[slot] = aligned_alloc(64, size); break;
    default: if (posix_memalign((void **)&kept[slot], 32, size) != 0) kept[slot] = NULL; break;
    }
    if (!kept[slot]) abort();
    memset(kept[slot], slot, malloc_usable_size(kept[slot]));  // every usable byte
  }
  for (int slot = 0; slot < 64; slot++) free(kept[slot]);
  return NULL;
}

/// Every allocation function used within bounds, from four threads and a forked child;
/// exits 0 with no report.
CASE case_clean(void) {
  pthread_t threads[4];
  for (int i = 0; i < 4; i++) pthread_create(&threads[i], NULL, churn, (void *)(uintptr_t)(i + 1));
  pid_t child = fork();
  if (child == 0) {
    churn((void *)99);
    _exit(0);
  }
  for (int i = 0; i < 4; i++) pthread_join(threads[i], NULL);
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "kfence_test: child ended with status %d\n", status);
    exit(1);
  }
  char *text = strdup("a string on the heap");
  char *grown = realloc(text, 4000);
  memset(grown + 21, 'x', 4000 - 21);
  free(grown);
  printf("clean: ok\n");
}

static sigjmp_buf recover;
static volatile sig_atomic_t recovered;
static int program_handler_first;

static void program_handler(int signal_number, siginfo_t *info, void *context) {
  (void)signal_number;
  (void)info;
  (void)context;
  recovered++;
  siglongjmp(recover, 1);
}

/// Installs the program's own SIGSEGV handler before the library's first malloc (a
/// constructor runs after the library's, which sets nothing up before the first call):
/// the library must hand it a fault outside the pool.
__attribute__((constructor)) static void install_first(int argc, char **argv, char **envp) {
  (void)envp;
  if (argc < 2 || strncmp(argv[1], "segv_chain", 10) != 0) return;
  struct sigaction current;
  sigaction(SIGSEGV, NULL, &current);
  program_handler_first = current.sa_handler == SIG_DFL;
  struct sigaction action = {0};
  action.sa_sigaction = program_handler;
  action.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigaction(SIGSEGV, &action, NULL);
}

/// A fault outside the pool goes to the program's handler installed before the library
/// set up (which recovers), then a pool overflow is reported: SIGABRT and a report.
CASE case_segv_chain_then_overflow(void) {
  if (!program_handler_first) {
    fprintf(stderr, "kfence_test: the library set up before the program's constructor\n");
    exit(5);
  }
  free(malloc(1));  // the library sets up here, over the program's handler
  struct sigaction current;
  sigaction(SIGSEGV, NULL, &current);
  if (current.sa_sigaction == program_handler) {
    fprintf(stderr, "kfence_test: the library installed no SIGSEGV handler\n");
    exit(6);
  }
  if (sigsetjmp(recover, 1) == 0) {
    volatile char *nowhere = (volatile char *)16;
    sink = *nowhere;
  }
  printf("recovered %d\n", (int)recovered);
  fflush(stdout);
  if (recovered != 1) exit(7);
  volatile char *p = PLACED(malloc(32), 32, END);
  p[32] = 1;
}

/// A fault outside the pool with the default disposition: the process dies of SIGSEGV
/// as it would without the library, with no report.
CASE case_segv_default(void) {
  free(malloc(1));
  volatile char *nowhere = (volatile char *)16;
  sink = *nowhere;
}

/// A program's handler installed after the library set up handles its own faults.
CASE case_segv_program_handler(void) {
  free(malloc(1));
  struct sigaction action = {0};
  action.sa_sigaction = program_handler;
  action.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigaction(SIGSEGV, &action, NULL);
  if (sigsetjmp(recover, 1) == 0) {
    volatile char *nowhere = (volatile char *)16;
    sink = *nowhere;
  }
  if (recovered != 1) exit(7);
  printf("recovered %d\n", (int)recovered);
}

// MARK: Main

static const struct {
  const char *name;
  void (*run)(void);
} cases[] = {
#define ENTRY(name) {#name, case_##name}
    ENTRY(oob_write_right),      ENTRY(oob_read_right),        ENTRY(oob_write_left),
    ENTRY(oob_read_left),        ENTRY(oob_write_far),         ENTRY(oob_write_memset),
    ENTRY(oob_read_strlen),      ENTRY(oob_write_strcpy),      ENTRY(calloc_overflow),
    ENTRY(posix_memalign_overflow), ENTRY(valloc_underflow),   ENTRY(pvalloc_overflow),
    ENTRY(reallocarray_read),    ENTRY(realloc_overflow),      ENTRY(uaf_read),
    ENTRY(uaf_write),            ENTRY(uaf_read_memcpy),       ENTRY(uaf_write_other_thread),
    ENTRY(realloc_old_pointer),  ENTRY(aligned_alloc_uaf),     ENTRY(usable_size_freed),
    ENTRY(double_free),          ENTRY(double_free_later),     ENTRY(memalign_double_free),
    ENTRY(free_after_realloc),   ENTRY(realloc_freed),         ENTRY(invalid_free_interior),
    ENTRY(invalid_free_guard),   ENTRY(canary_right),          ENTRY(canary_left),
    ENTRY(canary_right_start),   ENTRY(calloc_canary),         ENTRY(clean),
    ENTRY(segv_chain_then_overflow), ENTRY(segv_default),      ENTRY(segv_program_handler),
#undef ENTRY
};

int main(int argc, char **argv) {
  size_t count = sizeof cases / sizeof cases[0];
  if (argc == 2 && strcmp(argv[1], "list") == 0) {
    for (size_t i = 0; i < count; i++) printf("%s\n", cases[i].name);
    return 0;
  }
  for (size_t i = 0; argc == 2 && i < count; i++) {
    if (strcmp(argv[1], cases[i].name) != 0) continue;
    cases[i].run();
    if (strncmp(cases[i].name, "clean", 5) == 0 || strcmp(cases[i].name, "segv_program_handler") == 0) return 0;
    unnoticed();
  }
  fprintf(stderr, "usage: kfence_test CASE (kfence_test list)\n");
  return 2;
}
