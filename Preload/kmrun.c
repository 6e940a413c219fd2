// kmrun: runs one program and reports its wall time and peak RSS, for
// scripts/realworld.py. Linux keeps ru_maxrss across execve, so a program started
// straight from the (large) Python process would report at least Python's RSS; this
// small process forks it instead.
//
//   kmrun RESULT PRELOAD PROGRAM [ARGS...]
//
// PRELOAD: a library for the program's LD_PRELOAD (this process itself runs without
// one), or "" for none. Writes "<pid> <wait status> <ru_maxrss KiB> <wall ns>\n" to the
// file RESULT and exits 0; 127 when PROGRAM cannot be started.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: kmrun RESULT PRELOAD PROGRAM [ARGS...]\n");
    return 2;
  }
  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  pid_t child = fork();
  if (child < 0) return 127;
  if (child == 0) {
    if (argv[2][0]) setenv("LD_PRELOAD", argv[2], 1);
    execvp(argv[3], argv + 3);
    perror(argv[3]);
    _exit(127);
  }
  int status = 0;
  struct rusage usage;
  if (wait4(child, &status, 0, &usage) < 0) return 127;
  clock_gettime(CLOCK_MONOTONIC, &end);
  long long wall = (long long)(end.tv_sec - start.tv_sec) * 1000000000LL + (end.tv_nsec - start.tv_nsec);
  FILE *result = fopen(argv[1], "w");
  if (!result) return 127;
  fprintf(result, "%d %d %ld %lld\n", (int)child, status, usage.ru_maxrss, wall);
  return fclose(result) == 0 ? 0 : 127;
}
