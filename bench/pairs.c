// The program scripts/bench_instructions.py runs under valgrind's callgrind: N
// malloc+free pairs of SIZE bytes after a warm-up, through whatever malloc the process
// has (glibc's, or an LD_PRELOAD library's). callgrind collects only inside
// run_pairs (--collect-atstart=no --toggle-collect=run_pairs), so the count is the
// loop alone: per pair the malloc and free calls, a one-byte write into the block and
// the loop's own few instructions.
//
//   pairs SIZE N        (built with gcc -O2 -fno-builtin-malloc -fno-builtin-free)
#include <stdio.h>
#include <stdlib.h>

// noinline and used: callgrind must see it as a function of its own to toggle on.
__attribute__((noinline, used)) void run_pairs(size_t size, long pairs) {
  for (long i = 0; i < pairs; i++) {
    volatile char *block = malloc(size);
    if (!block) abort();
    block[0] = (char)i;
    free((void *)block);
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: pairs SIZE N\n");
    return 2;
  }
  size_t size = strtoul(argv[1], NULL, 10);
  long pairs = strtol(argv[2], NULL, 10);
  // Warm-up outside the toggle: the library's start-up, the lazy binding of malloc and
  // free, the first page or slab of the size, the thread cache's first fill.
  for (long i = 0; i < 10000; i++) {
    volatile char *block = malloc(size);
    if (!block) abort();
    block[0] = 0;
    free((void *)block);
  }
  run_pairs(size, pairs);
  return 0;
}
