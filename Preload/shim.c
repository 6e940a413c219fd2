// libkmalloc.so: the C allocation names over the kernel's heap and page-frame allocator
// (KernelHeap and PageFrames compiled in Embedded Swift for the host), for LD_PRELOAD.
// As in the kernel (Sources/KernelHeapRuntime/runtime.c) the names are defined here and
// forward to the kheap_* functions of KernelHeap/RuntimeAllocator.swift; this file adds
// what a Linux process needs around them:
//  - lazy set-up on the first call: one mmap reservation (KMALLOC_RESERVE bytes, default
//    64 GiB, MAP_NORESERVE) handed to Preload/PreloadSetup.swift, which releases it to
//    the page allocator one chunk (KMALLOC_CHUNK, default 64 MiB) at a time, whenever an
//    allocation fails;
//  - no lock of its own around the heap: the heap and the page allocator are safe on
//    every CPU (per-CPU caches, each with its own lock), and each thread is a CPU of its
//    own (Preload/cpu.c: the number is the thread id, the per-CPU slot that mod 8).
//    pthread_atfork handlers take every allocator lock before a fork and release them
//    in parent and child. Set-up runs once under a mutex; releasing another chunk of
//    the reservation (kmalloc_release_more) takes a mutex of its own; with KMALLOC_TRACE
//    every call holds one mutex, so the trace has the order the heap saw;
//  - the report hook: bad input ("free: double free 0x...") is written to stderr and
//    the call returns, as the kernel's handler would have printed it;
//  - freed large allocations beyond KMALLOC_RETAIN bytes (default 16 MiB) given back to
//    the kernel with MADV_DONTNEED, as glibc unmaps its large chunks;
//  - KMALLOC_STATS=1 (or =/path, appended): "kmalloc: pid=N started" when set up, and
//    a line of counts at exit, "kmalloc: pid=N malloc=... ";
//  - KMALLOC_TRACE=path: a binary log of every call (format below; "%p" in the path
//    becomes the pid, and forked children trace only then);
//  - the sampling detector (KernelHeap's GuardedPool, KFENCE/GWP-ASan): one allocation
//    in KMALLOC_SAMPLE (default GuardedPool.defaultInterval, 65536; 0: off) of each
//    size class on each CPU slot comes from a pool of
//    KMALLOC_SAMPLE_SLOTS (default 255) guarded pages. Its hooks are here (mprotect,
//    glibc's backtrace, stderr with symbolized stacks, abort), and a SIGSEGV handler
//    that reports a fault in the pool and hands every other one to the program's
//    previous handler.
//
// Trace file (raw, little-endian): a 16-byte header, "KMTRACE1", u32 record size (32),
// u32 pid; then 32-byte records, one per call in the order the heap saw them:
//     u8 op ('m' malloc, 'c' calloc, 'r' realloc, 'f' free, 'a' aligned: posix_memalign,
//            aligned_alloc, memalign, valloc, pvalloc)
//     u8 log2(alignment) (0 unless op 'a'), 6 bytes zero,
//     u64 size (calloc: count * size), u64 result address (0: failed, or free),
//     u64 freed/old address (free, realloc; else 0).
// scripts/kmalloc_trace.py turns it into the replay format (small reused ids).
#define _GNU_SOURCE
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "kmalloc_preload.h"
#include "tcache.h"

#define EXPORT __attribute__((visibility("default")))

// KernelHeap/RuntimeAllocator.swift and RuntimeAllocator+Usable.swift.
int kheap_posix_memalign(void **result, size_t alignment, size_t size);
void *kheap_malloc(size_t size);
void *kheap_calloc(size_t count, size_t size);
void *kheap_realloc(void *pointer, size_t size);
void kheap_free(void *pointer);
long kheap_usable_size(void *pointer);
// Preload/PreloadSetup.swift.
bool kmalloc_setup(void *base, long bytes, long chunk, long growth_pages, bool slabs);
bool kmalloc_release_more(size_t request);
void kmalloc_counts(long *out);
bool kmalloc_fork_lock(void);
void kmalloc_fork_unlock(void);
bool kmalloc_pool_bytes(long slots, long *out);
bool kmalloc_pool_setup(void *range, void *control, long slots, long interval);
bool kmalloc_pool_fault(uintptr_t address, bool is_write);
long kmalloc_pool_usable(void *pointer);
void kmalloc_pool_note_allocation(void *pointer, const uintptr_t *frames, long depth);
bool kmalloc_pool_counts(long *out);
long kmalloc_slab_objects(void);
// Preload/cpu.c (with ks_current_cpu).
unsigned ks_current_cpu(void);
void ks_forget_cpu(void);

// The heap serves alignments up to a page from its arenas; above that, a page run of
// 2^k pages (naturally aligned) is asked for.
#define PAGE 4096UL
#define LARGE_THRESHOLD (128UL << 10)
#define MAX_RUN_ALIGNMENT (4UL << 20)

enum { UNINIT, INITIALIZING, READY, FAILED };
static _Atomic int state = UNINIT;
static pthread_t init_thread;
/// The set-up (start_slow).
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
/// Releasing more of the reservation (PreloadSetup.swift's cursor).
static pthread_mutex_t grow_lock = PTHREAD_MUTEX_INITIALIZER;
/// With KMALLOC_TRACE: held over every call, so records come in the heap's order.
static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;
/// Set by kmalloc_report: the calling thread's current call was refused as bad input
/// (no retry).
static _Thread_local bool refused;
/// While set, kmalloc_report notes a refusal of this thread's call without printing it
/// (a probe).
static _Thread_local bool quiet;

// MARK: Helpers without malloc

static void write_all(int fd, const void *data, size_t length) {
  const char *cursor = data;
  while (length > 0) {
    ssize_t done = write(fd, cursor, length);
    if (done < 0 && errno == EINTR) continue;
    if (done <= 0) return;
    cursor += done;
    length -= (size_t)done;
  }
}

static char *put_text(char *out, const char *text, size_t length) {
  memcpy(out, text, length);
  return out + length;
}

static char *put_hex(char *out, uintptr_t value) {
  char digits[16];
  int count = 0;
  do {
    digits[count++] = "0123456789abcdef"[value & 15];
    value >>= 4;
  } while (value != 0);
  *out++ = '0';
  *out++ = 'x';
  while (count > 0) *out++ = digits[--count];
  return out;
}

static char *put_decimal(char *out, unsigned long value) {
  char digits[24];
  int count = 0;
  do {
    digits[count++] = (char)('0' + value % 10);
    value /= 10;
  } while (value != 0);
  while (count > 0) *out++ = digits[--count];
  return out;
}

void kmalloc_zero_fill(void *pointer, long count) {
  if (pointer && count > 0) memset(pointer, 0, (size_t)count);
}

void kmalloc_report(const uint8_t *function, long functionLength, const uint8_t *reason, long reasonLength,
                    uintptr_t address) {
  refused = true;
  if (quiet) return;
  char line[512];
  if (functionLength > 100) functionLength = 100;
  if (reasonLength > 300) reasonLength = 300;
  char *out = put_text(line, (const char *)function, (size_t)functionLength);
  out = put_text(out, ": ", 2);
  out = put_text(out, (const char *)reason, (size_t)reasonLength);
  *out++ = ' ';
  out = put_hex(out, address);
  *out++ = '\n';
  write_all(2, line, (size_t)(out - line));
}

/// Whether the environment sets `name` to "0" (a switch that is on by default).
static bool env_is_zero(const char *name) {
  const char *text = getenv(name);
  return text && text[0] == '0' && text[1] == 0;
}

/// A size from the environment: digits with an optional K, M or G suffix.
static size_t env_size(const char *name, size_t fallback) {
  const char *text = getenv(name);
  if (!text || !*text) return fallback;
  size_t value = 0;
  for (; *text >= '0' && *text <= '9'; text++) value = value * 10 + (size_t)(*text - '0');
  switch (*text) {
  case 'k': case 'K': value <<= 10; break;
  case 'm': case 'M': value <<= 20; break;
  case 'g': case 'G': value <<= 30; break;
  default: break;
  }
  return value ? value : fallback;
}

/// A decimal number from the environment, 0 included; `fallback` when unset, empty or
/// not all digits.
static long env_number(const char *name, long fallback) {
  const char *text = getenv(name);
  if (!text || !*text) return fallback;
  long value = 0;
  for (; *text; text++) {
    if (*text < '0' || *text > '9' || value > (1L << 40)) return fallback;
    value = value * 10 + (*text - '0');
  }
  return value;
}

// MARK: Counters (KMALLOC_STATS)

enum { OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_FREE, OP_ALIGNED, OP_FAILED, OP_COUNT };
/// Calls and failures, kept only with KMALLOC_STATS: one cache-line-aligned row per
/// per-CPU slot (relaxed atomic adds), summed at exit.
#define COUNT_SLOTS 8
static struct {
  _Atomic unsigned long n[OP_COUNT];
} __attribute__((aligned(64))) counters[COUNT_SLOTS];
static bool counting;
static unsigned long reservation_bytes;
static _Atomic size_t retained_bytes;
static size_t retain_budget = 16UL << 20;
static _Atomic unsigned long given_back_bytes;
/// KMALLOC_STATS: "1" for stderr, or a file to append to; empty when off.
static char stats_target[1024];

static inline void count_call(int op, bool failed) {
  if (__builtin_expect(!counting, 1)) return;
  unsigned slot = ks_current_cpu() & (COUNT_SLOTS - 1);
  atomic_fetch_add_explicit(&counters[slot].n[op], 1, memory_order_relaxed);
  if (failed) atomic_fetch_add_explicit(&counters[slot].n[OP_FAILED], 1, memory_order_relaxed);
}

static unsigned long counted(int op) {
  unsigned long total = 0;
  for (int slot = 0; slot < COUNT_SLOTS; slot++) total += atomic_load_explicit(&counters[slot].n[op], memory_order_relaxed);
  return total;
}

/// Writes one KMALLOC_STATS line to stderr or appends it to the file named.
static void stats_write(const char *line, size_t length) {
  int fd = 2;
  if (stats_target[0] == '/') fd = open(stats_target, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  write_all(fd, line, length);
  if (fd != 2) close(fd);
}

// MARK: Trace (KMALLOC_TRACE)

struct trace_record {
  uint8_t op;
  uint8_t align_log2;
  uint8_t zero[6];
  uint64_t size;
  uint64_t result;
  uint64_t old;
};
_Static_assert(sizeof(struct trace_record) == 32, "trace record layout");

#define TRACE_RECORDS 2048
static struct trace_record trace_buffer[TRACE_RECORDS];
static int trace_count;
static int trace_fd = -1;
/// After the library's destructor ran: every record is written at once.
static bool trace_unbuffered;
static bool trace_per_pid;
static char trace_template[1024];

static void trace_flush(void) {
  if (trace_fd >= 0 && trace_count > 0) write_all(trace_fd, trace_buffer, (size_t)trace_count * sizeof(struct trace_record));
  trace_count = 0;
}

static void trace_open(void) {
  char path[1200];
  char *out = path;
  trace_per_pid = false;
  for (const char *in = trace_template; *in && out < path + sizeof path - 24; in++) {
    if (in[0] == '%' && in[1] == 'p') {
      out = put_decimal(out, (unsigned long)getpid());
      trace_per_pid = true;
      in++;
    } else {
      *out++ = *in;
    }
  }
  *out = 0;
  trace_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (trace_fd < 0) return;
  struct { char magic[8]; uint32_t record_size; uint32_t pid; } header = {
    {'K', 'M', 'T', 'R', 'A', 'C', 'E', '1'}, sizeof(struct trace_record), (uint32_t)getpid()};
  write_all(trace_fd, &header, sizeof header);
}

static inline void trace(uint8_t op, size_t alignment, size_t size, void *result, void *old) {
  if (__builtin_expect(trace_fd < 0, 1)) return;
  struct trace_record *record = &trace_buffer[trace_count++];
  memset(record, 0, sizeof *record);
  record->op = op;
  record->align_log2 = alignment ? (uint8_t)__builtin_ctzl(alignment) : 0;
  record->size = size;
  record->result = (uintptr_t)result;
  record->old = (uintptr_t)old;
  if (trace_count == TRACE_RECORDS || trace_unbuffered) trace_flush();
}

// MARK: The sampling detector (KMALLOC_SAMPLE)

// KernelHeap's GuardedPool over memory mapped here: its address range PROT_NONE (slot
// pages between guard pages), its control block read-write. The heap sends one
// allocation in KMALLOC_SAMPLE per CPU slot to it (Heap.attach). A bad access faults:
// the SIGSEGV handler below asks the pool what it was (kmalloc_pool_fault), which prints
// the report through kmalloc_pool_write and ends in kmalloc_pool_fatal (abort). A bad
// free or a corrupted canary is found by the pool itself, in free.
//
// Stacks: glibc's backtrace unwinds with the .eh_frame tables, which the Embedded Swift
// objects do not have, so it cannot be called from inside the heap. The C names capture
// the stack themselves instead, where only C frames lie between them and the program:
// after an allocation that returned a pool object (kmalloc_pool_note_allocation), and
// before a free or realloc of one (handed to the pool through kmalloc_pool_capture).
/// KMALLOC_SAMPLE unset: GuardedPool.defaultInterval (kmalloc_pool_setup).
#define DEFAULT_SAMPLE (-1)
#define DEFAULT_SAMPLE_SLOTS 255
/// Frames kept per stack (GuardedSlot.stackDepth), and frames asked of backtrace: the
/// library's own frames come first and are left out.
#define STACK_DEPTH 16
#define CAPTURE_DEPTH (STACK_DEPTH + 6)

/// The pool's range, [pool_base, pool_end); both 0 when the detector is off.
static uintptr_t pool_base, pool_end;
/// The program's SIGSEGV disposition before the library's handler.
static struct sigaction previous_segv;
/// Set once glibc's backtrace has run once (its first call loads libgcc_s, which
/// allocates; prime_stacks, at the first pool allocation): until then stacks are left
/// empty. A process that never gets a pool object never loads libgcc_s.
static _Atomic bool stacks_ready;
/// Set by the library's constructor: libc is initialized, so loading a library is safe
/// (the first malloc may come from inside the dynamic loader, before that).
static _Atomic bool constructed;
static _Atomic bool primed;
/// This thread is inside backtrace: a malloc from there records no stack.
static _Thread_local bool capturing;
/// This library's code: frames there are left out of the stacks.
static uintptr_t own_text_start, own_text_end;
/// The stack of the faulting access being reported, printed by kmalloc_pool_fatal.
static _Thread_local int access_depth = -1;
static _Thread_local uintptr_t access_frames[STACK_DEPTH];
/// The stack of this thread's free or realloc of a pool object, for the pool's record.
static _Thread_local int call_depth;
static _Thread_local uintptr_t call_frames[STACK_DEPTH];
/// The thread printing a report (its id + 1); another thread's report waits for it
/// (and the process aborts meanwhile).
static _Atomic long report_owner;
/// The report line being assembled (the pool writes in chunks).
static char report_line[2048];
static size_t report_length;

static inline bool pool_contains(uintptr_t address) { return address - pool_base < pool_end - pool_base; }

bool kmalloc_pool_protect(void *context, uintptr_t page, bool accessible) {
  (void)context;
  return mprotect((void *)page, PAGE, accessible ? PROT_READ | PROT_WRITE : PROT_NONE) == 0;
}

/// Up to `capacity` frames of the calling stack into `out`: from the frame whose address
/// is `start` when it is found (a fault: the faulting instruction), else from the first
/// frame outside this library.
static long capture_frames(uintptr_t *out, long capacity, uintptr_t start) {
  if (!atomic_load_explicit(&stacks_ready, memory_order_acquire) || capturing || capacity <= 0) return 0;
  capturing = true;
  void *frames[CAPTURE_DEPTH];
  int depth = backtrace(frames, CAPTURE_DEPTH);
  capturing = false;
  int first = 0;
  if (start) {
    while (first < depth && (uintptr_t)frames[first] != start) first++;
    if (first == depth) first = 0;
  }
  if (first == 0)
    while (first < depth && (uintptr_t)frames[first] - own_text_start < own_text_end - own_text_start) first++;
  long count = 0;
  for (int index = first; index < depth && count < capacity; index++) out[count++] = (uintptr_t)frames[index];
  return count;
}

long kmalloc_pool_capture(void *context, uintptr_t *buffer, long capacity) {
  (void)context;
  long count = 0;
  for (; count < call_depth && count < capacity; count++) buffer[count] = call_frames[count];
  return count;
}

/// Before a free or realloc of a pool object: its caller's stack, for the pool.
static __attribute__((noinline)) void capture_call(void) {
  call_depth = (int)capture_frames(call_frames, STACK_DEPTH, 0);
}

static void prime_stacks(void);

static __attribute__((noinline)) void note_pool_allocation(void *pointer) {
  if (!atomic_load_explicit(&stacks_ready, memory_order_acquire)) prime_stacks();
  uintptr_t frames[STACK_DEPTH];
  long depth = capture_frames(frames, STACK_DEPTH, 0);
  if (depth > 0) kmalloc_pool_note_allocation(pointer, frames, depth);
}

/// After an allocation (outside every lock of the library's: the first one may load
/// libgcc_s, which allocates): when it is a pool object, its caller's stack goes to its
/// record.
static inline void note_allocation(void *pointer) {
  if (__builtin_expect(pool_contains((uintptr_t)pointer), 0)) note_pool_allocation(pointer);
}

/// Waits until no other thread is printing a report (that thread aborts the process).
static void report_begin(void) {
  long me = (long)gettid() + 1, expected = 0;
  while (!atomic_compare_exchange_strong(&report_owner, &expected, me)) {
    if (expected == me) return;
    expected = 0;
    struct timespec pause = {0, 1000000};
    nanosleep(&pause, NULL);
  }
}

/// One report line to stderr; after a "backtrace:" line, each of its addresses on a line
/// of its own, "    #N module(function+0xoffset) [0xaddress]" (backtrace_symbols_fd:
/// names of exported functions; a program's own show with -rdynamic, else module+offset
/// for addr2line).
static void report_put_line(const char *line, size_t length) {
  write_all(2, line, length);
  const char *mark = memmem(line, length, "backtrace:", 10);
  if (!mark) return;
  const char *cursor = mark + 10, *end = line + length;
  int number = 0;
  while (cursor < end) {
    while (cursor < end && (*cursor == ' ' || *cursor == '\n')) cursor++;
    if (end - cursor < 3 || cursor[0] != '0' || cursor[1] != 'x') break;
    uintptr_t address = 0;
    for (cursor += 2; cursor < end; cursor++) {
      char c = *cursor;
      int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (digit < 0) break;
      address = address << 4 | (uintptr_t)digit;
    }
    char prefix[32];
    char *out = put_text(prefix, "    #", 5);
    out = put_decimal(out, (unsigned long)number++);
    *out++ = ' ';
    write_all(2, prefix, (size_t)(out - prefix));
    void *frame = (void *)address;
    backtrace_symbols_fd(&frame, 1, 2);
  }
}

static void report_flush_line(void) {
  if (report_length > 0) report_put_line(report_line, report_length);
  report_length = 0;
}

void kmalloc_pool_write(void *context, const uint8_t *bytes, long count) {
  (void)context;
  report_begin();
  for (long index = 0; index < count; index++) {
    report_line[report_length++] = (char)bytes[index];
    if (bytes[index] == '\n' || report_length == sizeof report_line) report_flush_line();
  }
}

void kmalloc_pool_fatal(void *context) {
  (void)context;
  report_begin();
  report_flush_line();
  if (access_depth >= 0) {
    // "  this access on cpu N, backtrace: 0x... 0x...", as the pool's own stack lines.
    char line[64 + STACK_DEPTH * 20];
    char *out = put_text(line, "  this access on cpu ", 21);
    out = put_decimal(out, (unsigned long)ks_current_cpu());
    out = put_text(out, ", backtrace:", 12);
    for (int index = 0; index < access_depth; index++) {
      *out++ = ' ';
      out = put_hex(out, access_frames[index]);
    }
    *out++ = '\n';
    report_put_line(line, (size_t)(out - line));
  }
  char line[128];
  char *out = put_text(line, "kmalloc: pid=", 13);
  out = put_decimal(out, (unsigned long)getpid());
  static const char tail[] = " memory error found by the sampling detector, aborting\n";
  out = put_text(out, tail, sizeof tail - 1);
  write_all(2, line, (size_t)(out - line));
  abort();
}

/// A fault the library does not report: as the program's own disposition would have it.
/// A handler of the program's is called; for the default action (or ignoring) that
/// disposition is put back and the fault happens again when this handler returns (a
/// SIGSEGV sent with kill is raised again instead).
static void chain_segv(int signal_number, siginfo_t *info, void *context) {
  struct sigaction previous = previous_segv;
  bool has_info = (previous.sa_flags & SA_SIGINFO) != 0;
  if (!has_info && (previous.sa_handler == SIG_DFL || previous.sa_handler == SIG_IGN)) {
    if (previous.sa_handler == SIG_IGN && info->si_code <= 0) return;
    sigaction(signal_number, &previous, NULL);
    if (info->si_code <= 0) raise(signal_number);  // pending until this handler returns
    return;
  }
  if (previous.sa_flags & SA_RESETHAND) {
    struct sigaction reset = {0};
    reset.sa_handler = SIG_DFL;
    sigaction(signal_number, &reset, NULL);
  }
  sigset_t saved;
  pthread_sigmask(SIG_BLOCK, &previous.sa_mask, &saved);
  if (has_info) {
    previous.sa_sigaction(signal_number, info, context);
  } else {
    previous.sa_handler(signal_number);
  }
  pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

static void segv_handler(int signal_number, siginfo_t *info, void *context) {
  uintptr_t address = (uintptr_t)info->si_addr;
  if (info->si_code > 0 && pool_contains(address)) {
    bool is_write = false;
    uintptr_t pc = 0;
#if defined(__x86_64__)
    ucontext_t *state = context;
    is_write = (state->uc_mcontext.gregs[REG_ERR] & 2) != 0;  // the page fault's W bit
    pc = (uintptr_t)state->uc_mcontext.gregs[REG_RIP];
#endif
    access_depth = (int)capture_frames(access_frames, STACK_DEPTH, pc);
    if (kmalloc_pool_fault(address, is_write)) return;  // not reached: the report aborts
    access_depth = -1;
  }
  chain_segv(signal_number, info, context);
}

/// With KMALLOC_SAMPLE not 0: maps the pool, attaches it to the heap (kmalloc_pool_setup)
/// and installs the SIGSEGV handler, with an alternate signal stack for this thread when
/// it has none. Called by initialize, before any other thread can use the heap.
static void pool_start(void) {
  long interval = env_number("KMALLOC_SAMPLE", DEFAULT_SAMPLE);
  if (interval == 0) return;
  long slots = env_number("KMALLOC_SAMPLE_SLOTS", DEFAULT_SAMPLE_SLOTS);
  long bytes[2];
  if (!kmalloc_pool_bytes(slots, bytes)) {
    static const char message[] = "kmalloc: KMALLOC_SAMPLE_SLOTS out of range (1 ... 32768): detector off\n";
    write_all(2, message, sizeof message - 1);
    return;
  }
  void *range = mmap(NULL, (size_t)bytes[0], PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  void *control = mmap(NULL, (size_t)bytes[1], PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (range == MAP_FAILED || control == MAP_FAILED || !kmalloc_pool_setup(range, control, slots, interval)) {
    if (range != MAP_FAILED) munmap(range, (size_t)bytes[0]);
    if (control != MAP_FAILED) munmap(control, (size_t)bytes[1]);
    static const char message[] = "kmalloc: cannot set up the sampling detector: detector off\n";
    write_all(2, message, sizeof message - 1);
    return;
  }
  pool_base = (uintptr_t)range;
  pool_end = pool_base + (uintptr_t)bytes[0];
  stack_t current;
  if (sigaltstack(NULL, &current) == 0 && (current.ss_flags & SS_DISABLE)) {
    size_t size = 64 << 10;
    void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stack != MAP_FAILED) {
      stack_t alternate = {.ss_sp = stack, .ss_size = size, .ss_flags = 0};
      sigaltstack(&alternate, NULL);
    }
  }
  struct sigaction action = {0};
  action.sa_sigaction = segv_handler;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  sigaction(SIGSEGV, &action, &previous_segv);
}

static int find_own_text(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  (void)data;
  uintptr_t self = (uintptr_t)&kmalloc_pool_capture;
  for (int index = 0; index < info->dlpi_phnum; index++) {
    const ElfW(Phdr) *header = &info->dlpi_phdr[index];
    if (header->p_type != PT_LOAD || !(header->p_flags & PF_X)) continue;
    uintptr_t start = info->dlpi_addr + header->p_vaddr;
    if (self - start < header->p_memsz) {
      own_text_start = start;
      own_text_end = start + header->p_memsz;
      return 1;
    }
  }
  return 0;
}

// MARK: Set-up, locking, fork

/// Allocations made by a recursive call while the set-up itself runs (nothing in it is
/// known to allocate; this only keeps such a call from deadlocking). Never freed.
static char bootstrap[64 << 10] __attribute__((aligned(PAGE)));
static _Atomic size_t bootstrap_used;

static bool in_bootstrap(const void *pointer) {
  return (const char *)pointer >= bootstrap && (const char *)pointer < bootstrap + sizeof bootstrap;
}

static void *bootstrap_alloc(size_t size, size_t alignment) {
  if (alignment < 16) alignment = 16;
  size_t used = atomic_load(&bootstrap_used), start;
  do {
    start = (used + 16 + alignment - 1) & ~(alignment - 1);
    if (size > sizeof bootstrap || start + size > sizeof bootstrap) return NULL;
  } while (!atomic_compare_exchange_weak(&bootstrap_used, &used, start + size));
  *(size_t *)(bootstrap + start - 8) = size;
  return bootstrap + start;
}

/// Whether fork_prepare holds the allocator's locks (not when the forking thread is
/// inside the allocator itself: a fork from a signal handler).
static bool fork_locked;

/// Before fork: the shim's mutexes, then every lock of the heap and the page allocator
/// (kmalloc_fork_lock, in their lock order), so no other thread is inside the allocator
/// when the address space is copied.
static void fork_prepare(void) {
  pthread_mutex_lock(&trace_lock);
  pthread_mutex_lock(&grow_lock);
  fork_locked = kmalloc_fork_lock();
}

static void fork_parent(void) {
  if (fork_locked) kmalloc_fork_unlock();
  pthread_mutex_unlock(&grow_lock);
  pthread_mutex_unlock(&trace_lock);
}

/// Set once the library is ready with the per-thread cache on and nothing to record per
/// call (no KMALLOC_TRACE, no KMALLOC_STATS): malloc and free then try the thread's
/// bins first and return at once on a hit, with none of the general path's bookkeeping.
static _Atomic bool plain_calls;

static void decide_plain_calls(void) {
  atomic_store_explicit(&plain_calls, tcache_enabled && trace_fd < 0 && !counting, memory_order_release);
}

static void fork_child(void) {
  // Released under the number they were taken with (the parent thread's id), and only
  // then the child's thread asks for its own.
  if (fork_locked) kmalloc_fork_unlock();
  ks_forget_cpu();
  pthread_mutex_init(&grow_lock, NULL);
  pthread_mutex_init(&trace_lock, NULL);
  // The parent writes its own buffered records; the child starts its own file or none.
  trace_count = 0;
  if (trace_fd >= 0) {
    close(trace_fd);
    trace_fd = -1;
    if (trace_per_pid) trace_open();
  }
  for (int slot = 0; slot < COUNT_SLOTS; slot++)
    for (int op = 0; op < OP_COUNT; op++) atomic_store_explicit(&counters[slot].n[op], 0, memory_order_relaxed);
  decide_plain_calls();
}

static bool initialize(void) {
  size_t bytes = env_size("KMALLOC_RESERVE", 64UL << 30);
  size_t chunk = env_size("KMALLOC_CHUNK", 64UL << 20);
  size_t growth_pages = env_size("KMALLOC_GROWTH_PAGES", 256);
  void *base = MAP_FAILED;
  // Smaller reservations when the address space is limited (ulimit -v, overcommit off).
  for (; bytes >= (64UL << 20); bytes >>= 1) {
    base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base != MAP_FAILED) break;
  }
  if (base == MAP_FAILED || !kmalloc_setup(base, (long)bytes, (long)chunk, (long)growth_pages, !env_is_zero("KMALLOC_SLABS"))) {
    static const char message[] = "kmalloc: cannot set up the heap (mmap failed)\n";
    write_all(2, message, sizeof message - 1);
    return false;
  }
  reservation_bytes = bytes;
  retain_budget = env_size("KMALLOC_RETAIN", retain_budget);
  const char *stats = getenv("KMALLOC_STATS");
  if (stats && *stats && strcmp(stats, "0") != 0 && strlen(stats) < sizeof stats_target) {
    strcpy(stats_target, stats);
    counting = true;
    // At once too: a process that leaves through _exit (dash, a forked child) writes no
    // exit line.
    char line[64];
    char *out = put_text(line, "kmalloc: pid=", 13);
    out = put_decimal(out, (unsigned long)getpid());
    out = put_text(out, " started\n", 9);
    stats_write(line, (size_t)(out - line));
  }
  pool_start();
  // The per-thread cache counts the detector's interval itself (tcache.c).
  long pool[4];
  long interval = kmalloc_pool_counts(pool) ? pool[3] : 0;
  tcache_start(env_is_zero("KMALLOC_SLABS") ? 0 : env_number("KMALLOC_TCACHE", TCACHE_DEFAULT_COUNT), interval);
  const char *trace_path = getenv("KMALLOC_TRACE");
  if (trace_path && *trace_path && strlen(trace_path) < sizeof trace_template) {
    strcpy(trace_template, trace_path);
    trace_open();
  }
  return true;
}

/// Sets up on the first call. False when the caller must not use the heap: set-up
/// failed, or this is a recursive call from inside the set-up.
static __attribute__((noinline)) bool start_slow(void) {
  int now = atomic_load(&state);
  if (now == READY) return true;
  if (now == FAILED) return false;
  if (now == INITIALIZING && pthread_equal(init_thread, pthread_self())) return false;
  bool registerFork = false;
  pthread_mutex_lock(&init_lock);
  if (atomic_load(&state) == UNINIT) {
    init_thread = pthread_self();
    atomic_store(&state, INITIALIZING);
    bool ok = initialize();
    atomic_store(&state, ok ? READY : FAILED);
    if (ok) decide_plain_calls();
    registerFork = ok;
  }
  pthread_mutex_unlock(&init_lock);
  // Outside the lock: pthread_atfork may allocate.
  if (registerFork) pthread_atfork(fork_prepare, fork_parent, fork_child);
  return atomic_load(&state) == READY;
}

static inline bool started(void) {
  if (__builtin_expect(atomic_load_explicit(&state, memory_order_acquire) == READY, 1)) return true;
  return start_slow();
}

/// At the first pool allocation once libc is initialized: finds this library's code and
/// calls backtrace once (its first call loads libgcc_s, which allocates; those
/// allocations record no stack), so that stacks are recorded from now on.
static void prime_stacks(void) {
  if (!atomic_load(&constructed) || atomic_exchange(&primed, true)) return;
  dl_iterate_phdr(find_own_text, NULL);
  void *frames[4];
  capturing = true;
  backtrace(frames, 4);
  capturing = false;
  atomic_store_explicit(&stacks_ready, true, memory_order_release);
}

/// Runs after libc's initialization (and before the program's constructors).
__attribute__((constructor)) static void kmalloc_constructed(void) { atomic_store(&constructed, true); }

/// Before a heap call: with KMALLOC_TRACE the trace mutex (whether it was taken),
/// else nothing; the heap's own per-CPU locks do the rest.
static inline bool acquire(void) {
  refused = false;
  if (__builtin_expect(trace_fd < 0, 1)) return false;
  pthread_mutex_lock(&trace_lock);
  return true;
}

static inline void release(bool locked) {
  if (__builtin_expect(locked, 0)) pthread_mutex_unlock(&trace_lock);
}

/// Whether a failed allocation of `bytes` may be retried: it was not refused as bad
/// input, and another chunk of the reservation could be released for it. Threads that
/// fail at once take turns; each may release a chunk.
static __attribute__((noinline)) bool more(size_t bytes) {
  if (refused) return false;
  pthread_mutex_lock(&grow_lock);
  bool released = kmalloc_release_more(bytes);
  pthread_mutex_unlock(&grow_lock);
  return released;
}

// MARK: Giving freed page runs back to the kernel

// The heap keeps freed pages in the page allocator, resident, where glibc unmaps a
// freed mmap chunk. So a freed large allocation (a page run of its own) stays resident
// only while the freed runs kept so add up to at most KMALLOC_RETAIN bytes (default
// 16 MiB; a large allocation is taken to reuse kept pages first); past that it is
// given back with MADV_DONTNEED. Growing buffers (a realloc'd string, say) then do not
// leave every smaller copy resident, and a large buffer freed and allocated over and
// over does not fault its pages in again each time.
/// The length of the page run `pointer` heads as a large allocation, or 0 (an arena
/// block, or bad input: then the caller's own call reports it).
static inline size_t large_run_bytes(void *pointer) {
  if (((uintptr_t)pointer & (PAGE - 1)) != 0 || pool_contains((uintptr_t)pointer)) return 0;
  quiet = true;
  long bytes = kheap_usable_size(pointer);
  quiet = false;
  refused = false;
  return bytes > (long)LARGE_THRESHOLD ? (size_t)bytes : 0;
}

/// Before a large allocation of `bytes` at `pointer` is freed: once freed, the run is
/// the heap's again and another thread may be using it at once, so it is given back
/// first.
static void give_back(void *pointer, size_t bytes) {
  if (atomic_fetch_add_explicit(&retained_bytes, bytes, memory_order_relaxed) + bytes <= retain_budget) return;
  atomic_fetch_sub_explicit(&retained_bytes, bytes, memory_order_relaxed);
  madvise(pointer, bytes, MADV_DONTNEED);
  atomic_fetch_add_explicit(&given_back_bytes, bytes, memory_order_relaxed);
}

/// After a large allocation of `bytes`: it most likely reused retained pages.
static inline void took_large(size_t bytes) {
  if (bytes <= LARGE_THRESHOLD) return;
  size_t kept = atomic_load_explicit(&retained_bytes, memory_order_relaxed);
  while (kept > 0 && !atomic_compare_exchange_weak_explicit(&retained_bytes, &kept, bytes < kept ? kept - bytes : 0,
                                                            memory_order_relaxed, memory_order_relaxed)) {
  }
}

// MARK: The C names

/// The heap's aligned allocation, or for alignments above a page a page run big enough
/// to be a buddy block of that alignment (runs up to 4 MiB come naturally aligned).
static void *aligned_locked(size_t alignment, size_t size) {
  if (alignment <= PAGE) {
    void *result = NULL;
    if (kheap_posix_memalign(&result, alignment < 8 ? 8 : alignment, size) != 0) result = NULL;
    return result;
  }
  if (alignment > MAX_RUN_ALIGNMENT) return NULL;
  size_t request = size > alignment ? size : alignment;
  if (request <= LARGE_THRESHOLD) request = LARGE_THRESHOLD + 1;
  void *result = kheap_malloc(request);
  if (result && ((uintptr_t)result & (alignment - 1)) != 0) {
    kheap_free(result);
    result = NULL;
  }
  return result;
}

static void *aligned_common(size_t alignment, size_t size) {
  if (!started()) return bootstrap_alloc(size, alignment);
  bool locked = acquire();
  void *result = aligned_locked(alignment, size);
  // Above a page, a run found by the page allocator's scan may be misaligned however
  // much is released: two more chunks at most.
  int tries = 0;
  while (!result && alignment <= MAX_RUN_ALIGNMENT && size <= SIZE_MAX - alignment &&
         (alignment <= PAGE || tries++ < 2) && more(size + alignment))
    result = aligned_locked(alignment, size);
  if (size > LARGE_THRESHOLD && result) took_large(size);
  count_call(OP_ALIGNED, !result);
  trace('a', alignment, size, result, NULL);
  release(locked);
  note_allocation(result);
  return result;
}

static __attribute__((noinline)) void *malloc_general(size_t size);

EXPORT void *malloc(size_t size) {
  bool plain = atomic_load_explicit(&plain_calls, memory_order_acquire);
  if (__builtin_expect(plain && size <= TCACHE_LIMIT, 1)) {
    // A bin holds no pool object (those are freed to the pool), so no note is due.
    void *object = tcache_malloc_hit(size);
    if (__builtin_expect(object != NULL, 1)) return object;
  }
  return malloc_general(size);
}

/// malloc past a bin hit (out of line, so that the hit needs no stack frame). Its
/// `tcache_malloc` tries the hit again, which changed nothing the first time: cheaper
/// on the rare miss than keeping a flag alive across every hit.
static __attribute__((noinline)) void *malloc_general(size_t size) {
  if (!started()) return bootstrap_alloc(size, 16);
  bool locked = acquire();
  void *result = size <= TCACHE_LIMIT && tcache_enabled ? tcache_malloc(size) : NULL;
  if (__builtin_expect(!result, 0)) {
    result = kheap_malloc(size);
    while (__builtin_expect(!result, 0) && more(size)) result = kheap_malloc(size);
  }
  if (size > LARGE_THRESHOLD && result) took_large(size);
  count_call(OP_MALLOC, !result);
  trace('m', 0, size, result, NULL);
  release(locked);
  note_allocation(result);
  if (!result) errno = ENOMEM;
  return result;
}

static __attribute__((noinline)) void free_general(void *pointer, bool plain);

EXPORT void free(void *pointer) {
  // A pool object is no slab object: tcache_free declines it, and so does it a pointer
  // into the bootstrap area, which no heap page holds.
  bool plain = atomic_load_explicit(&plain_calls, memory_order_acquire);
  if (__builtin_expect(plain && pointer != NULL, 1) && tcache_free(pointer)) return;
  free_general(pointer, plain);
}

/// free past a bin push (out of line, so that the push needs no stack frame). `plain`:
/// the bins were tried already.
static __attribute__((noinline)) void free_general(void *pointer, bool plain) {
  if (!pointer || in_bootstrap(pointer)) return;
  if (!started()) return;
  bool locked = acquire();
  if (pool_contains((uintptr_t)pointer)) {
    capture_call();
    kheap_free(pointer);
    call_depth = 0;
  } else if (!tcache_enabled || plain || !tcache_free(pointer)) {
    size_t large = large_run_bytes(pointer);
    if (large) give_back(pointer, large);
    kheap_free(pointer);
  }
  count_call(OP_FREE, false);
  trace('f', 0, 0, NULL, pointer);
  release(locked);
}

EXPORT void *calloc(size_t count, size_t size) {
  size_t bytes;
  if (__builtin_mul_overflow(count, size, &bytes)) {
    errno = ENOMEM;
    return NULL;
  }
  if (!started()) return bootstrap_alloc(bytes, 16);  // static memory: already zero
  bool locked = acquire();
  void *result;
  if (bytes > LARGE_THRESHOLD) {
    // A page run of its own: zeroed by the kernel instead of memset, so that pages the
    // program never touches stay out of its RSS (glibc's calloc leaves fresh mmap
    // chunks alone the same way).
    result = kheap_malloc(bytes);
    while (!result && more(bytes)) result = kheap_malloc(bytes);
    if (result) madvise(result, (bytes + PAGE - 1) & ~(PAGE - 1), MADV_DONTNEED);
  } else if (bytes <= TCACHE_LIMIT && tcache_enabled && (result = tcache_malloc(bytes)) != NULL) {
    memset(result, 0, bytes);
  } else {
    result = kheap_calloc(count, size);
    while (__builtin_expect(!result, 0) && more(bytes)) result = kheap_calloc(count, size);
  }
  if (bytes > LARGE_THRESHOLD && result) took_large(bytes);
  count_call(OP_CALLOC, !result);
  trace('c', 0, bytes, result, NULL);
  release(locked);
  note_allocation(result);
  if (!result) errno = ENOMEM;
  return result;
}

EXPORT void *realloc(void *pointer, size_t size) {
  if (pointer && in_bootstrap(pointer)) {
    size_t old = *(size_t *)((char *)pointer - 8);
    void *moved = malloc(size);
    if (moved) memcpy(moved, pointer, old < size ? old : size);
    return moved;
  }
  if (!started()) return pointer ? NULL : bootstrap_alloc(size, 16);
  bool locked = acquire();
  void *result;
  size_t large = pointer ? large_run_bytes(pointer) : 0;
  if (large && (size == 0 || size > large || size <= LARGE_THRESHOLD)) {
    // A large allocation that moves (or goes): as Heap.reallocate, but the old run is
    // given back.
    result = NULL;
    if (size != 0) {
      result = kheap_malloc(size);
      while (!result && more(size)) result = kheap_malloc(size);
      if (result) memcpy(result, pointer, size < large ? size : large);
    }
    if (result || size == 0) {
      give_back(pointer, large);
      kheap_free(pointer);
    }
  } else if (tcache_enabled && pointer && !pool_contains((uintptr_t)pointer) && tcache_holds(pointer, "realloc")) {
    result = NULL;  // freed already: reported as the heap would
  } else {
    bool pooled = pool_contains((uintptr_t)pointer);
    if (pooled) capture_call();
    result = kheap_realloc(pointer, size);
    while (__builtin_expect(!result, 0) && size != 0 && more(size)) result = kheap_realloc(pointer, size);
    if (pooled) call_depth = 0;
  }
  if (size > LARGE_THRESHOLD && result && result != pointer) took_large(size);
  count_call(OP_REALLOC, !result && size != 0);
  trace('r', 0, size, result, pointer);
  release(locked);
  if (result != pointer) note_allocation(result);
  if (!result && size != 0) errno = ENOMEM;
  return result;
}

EXPORT void *reallocarray(void *pointer, size_t count, size_t size) {
  size_t bytes;
  if (__builtin_mul_overflow(count, size, &bytes)) {
    errno = ENOMEM;
    return NULL;
  }
  return realloc(pointer, bytes);
}

EXPORT int posix_memalign(void **result, size_t alignment, size_t size) {
  if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
  void *pointer = aligned_common(alignment, size);
  if (!pointer) return ENOMEM;
  *result = pointer;
  return 0;
}

EXPORT void *aligned_alloc(size_t alignment, size_t size) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    errno = EINVAL;
    return NULL;
  }
  void *pointer = aligned_common(alignment, size);
  if (!pointer) errno = ENOMEM;
  return pointer;
}

/// memalign as glibc's: an alignment that is not a power of two is rounded up to one.
EXPORT void *memalign(size_t alignment, size_t size) {
  if (alignment <= 16) return malloc(size);
  if ((alignment & (alignment - 1)) != 0) {
    if (alignment > SIZE_MAX / 2) {
      errno = EINVAL;
      return NULL;
    }
    alignment = 1UL << (64 - __builtin_clzl(alignment));
  }
  void *pointer = aligned_common(alignment, size);
  if (!pointer) errno = ENOMEM;
  return pointer;
}

EXPORT void *valloc(size_t size) { return memalign(PAGE, size); }

EXPORT void *pvalloc(size_t size) {
  if (size > SIZE_MAX - PAGE) {
    errno = ENOMEM;
    return NULL;
  }
  return memalign(PAGE, (size + PAGE - 1) & ~(PAGE - 1));
}

EXPORT size_t malloc_usable_size(void *pointer) {
  if (!pointer) return 0;
  if (in_bootstrap(pointer)) return *(size_t *)((char *)pointer - 8);
  if (!started()) return 0;
  bool locked = acquire();
  // A pool pointer that is no live object's start is reported by the detector (a freed
  // object's as a use after free) rather than as the heap's bad input.
  long size;
  if (pool_contains((uintptr_t)pointer)) {
    // Reported as an access when it is no live object: its stack is this call's.
    access_depth = (int)capture_frames(access_frames, STACK_DEPTH, 0);
    size = kmalloc_pool_usable(pointer);
    access_depth = -1;
  } else if (tcache_enabled && tcache_holds(pointer, "malloc_usable_size")) {
    size = 0;  // freed already: reported as the heap would
  } else {
    size = kheap_usable_size(pointer);
  }
  release(locked);
  return size > 0 ? (size_t)size : 0;
}

// MARK: Exit

__attribute__((destructor)) static void kmalloc_exit(void) {
  if (atomic_load(&state) != READY) return;
  bool locked = acquire();
  trace_flush();
  trace_unbuffered = true;
  if (stats_target[0]) {
    // This thread's bins back first, so that the heap's count of live objects is the
    // program's (other threads' bins went back when they exited).
    tcache_flush_thread();
    long counts[5] = {0};
    kmalloc_counts(counts);
    static const char *names[OP_FAILED] = {" malloc=", " calloc=", " realloc=", " free=", " aligned="};
    char line[600];
    char *out = put_text(line, "kmalloc: pid=", 13);
    out = put_decimal(out, (unsigned long)getpid());
    for (int op = 0; op < OP_FAILED; op++) {
      out = put_text(out, names[op], strlen(names[op]));
      out = put_decimal(out, counted(op));
    }
    out = put_text(out, " failed=", 8);
    out = put_decimal(out, counted(OP_FAILED));
    out = put_text(out, " reserved_mib=", 14);
    out = put_decimal(out, reservation_bytes >> 20);
    out = put_text(out, " released_mib=", 14);
    out = put_decimal(out, (unsigned long)counts[0] >> 20);
    out = put_text(out, " releases=", 10);
    out = put_decimal(out, (unsigned long)counts[1]);
    out = put_text(out, " given_back_mib=", 16);
    out = put_decimal(out, atomic_load(&given_back_bytes) >> 20);
    out = put_text(out, " free_pages=", 12);
    out = put_decimal(out, (unsigned long)counts[2]);
    out = put_text(out, " heap_pages=", 12);
    out = put_decimal(out, (unsigned long)counts[3]);
    out = put_text(out, " large_pages=", 13);
    out = put_decimal(out, (unsigned long)counts[4]);
    long pool[4];
    if (kmalloc_pool_counts(pool)) {
      out = put_text(out, " sample_interval=", 17);
      out = put_decimal(out, (unsigned long)pool[3]);
      out = put_text(out, " sampled=", 9);
      out = put_decimal(out, (unsigned long)pool[1]);
      out = put_text(out, " sample_missed=", 15);
      out = put_decimal(out, (unsigned long)pool[2]);
      out = put_text(out, " sampled_live=", 14);
      out = put_decimal(out, (unsigned long)pool[0]);
    }
    out = put_text(out, " slab_objects=", 14);
    out = put_decimal(out, (unsigned long)kmalloc_slab_objects());
    *out++ = '\n';
    stats_write(line, (size_t)(out - line));
  }
  release(locked);
}
