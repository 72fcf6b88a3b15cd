// Single-threaded memcpy bandwidth of 1 GiB between resident buffers (the reference for the put and get
// targets in docs/benchmarks.md): gcc -O2 scripts/memcpy_bandwidth.c -o /tmp/memcpy && /tmp/memcpy
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
int main(void) {
  size_t n = 1UL << 30;
  char *a = malloc(n), *b = malloc(n);
  memset(a, 1, n); memset(b, 2, n);
  double total = 0; int runs = 5;
  for (int i = 0; i < runs; i++) {
    struct timespec s, e; clock_gettime(CLOCK_MONOTONIC, &s);
    memcpy(b, a, n);
    clock_gettime(CLOCK_MONOTONIC, &e);
    double sec = (e.tv_sec - s.tv_sec) + (e.tv_nsec - s.tv_nsec) / 1e9;
    printf("run %d: %.2f GB/s\n", i, n / sec / 1e9); total += n / sec / 1e9;
  }
  printf("mean: %.2f GB/s\n", total / runs);
  return b[12345] == 1 ? 0 : 1;
}
