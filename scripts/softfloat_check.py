#!/usr/bin/env python3
"""Checks the kernel's own soft-float routines (Sources/ArchSupport/riscv64/softfloat.c,
what the riscv64 kernel links for Swift's Double on its soft-float ABI) against the
host's hardware floating point: the file is compiled for the host with its routines
renamed (check___muldf3, ...), and a C driver runs each on edge cases (zeros,
subnormals, the largest and smallest values, infinities, NaN, ties) and on a million
random operands, comparing bit for bit with what the host computes.

    scripts/softfloat_check.py          prints "softfloat: N cases, 0 differ" and exits 0
"""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
SOURCE = os.path.join(ROOT, "Sources/ArchSupport/riscv64/softfloat.c")

DRIVER = r"""
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
double check___muldf3(double, double); double check___divdf3(double, double);
double check___floatdidf(int64_t); double check___floatundidf(uint64_t); int64_t check___fixdfdi(double);
int check___eqdf2(double, double); int check___ltdf2(double, double); int check___gtdf2(double, double);
int check___unorddf2(double, double); double check_ceil(double);
static uint64_t state = 0x9E3779B97F4A7C15ull;
static uint64_t next(void) { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state; }
static uint64_t bits(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }
static double value(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }
static long cases, differ;
static int same(double a, double b) { return (isnan(a) && isnan(b)) || bits(a) == bits(b); }
static void fail(const char *what, double a, double b, uint64_t got, uint64_t want) {
  if (differ++ < 20) printf("differs: %s(%a, %a) = %016llx, want %016llx\n", what, a, b,
                            (unsigned long long)got, (unsigned long long)want);
}
static int sign(int x) { return x < 0 ? -1 : x > 0; }
static void pair(double a, double b) {
  cases++;
  double m = check___muldf3(a, b), d = check___divdf3(a, b);
  if (!same(m, a * b)) fail("mul", a, b, bits(m), bits(a * b));
  if (!same(d, a / b)) fail("div", a, b, bits(d), bits(a / b));
  int unordered = isnan(a) || isnan(b);
  if ((check___eqdf2(a, b) == 0) != (a == b)) fail("eq", a, b, check___eqdf2(a, b), a == b);
  if ((check___ltdf2(a, b) < 0) != (a < b)) fail("lt", a, b, check___ltdf2(a, b), a < b);
  if ((check___ltdf2(a, b) <= 0) != (a <= b)) fail("le", a, b, check___ltdf2(a, b), a <= b);
  if ((check___gtdf2(a, b) > 0) != (a > b)) fail("gt", a, b, check___gtdf2(a, b), a > b);
  if ((check___gtdf2(a, b) >= 0) != (a >= b)) fail("ge", a, b, check___gtdf2(a, b), a >= b);
  if ((check___unorddf2(a, b) != 0) != unordered) fail("unord", a, b, check___unorddf2(a, b), unordered);
  if (!unordered && sign(check___ltdf2(a, b)) != (a < b ? -1 : a > b)) fail("cmp", a, b, check___ltdf2(a, b), 0);
}
static void one(double a) {
  double c = check_ceil(a);
  if (!same(c, ceil(a))) fail("ceil", a, 0, bits(c), bits(ceil(a)));
  if (!isnan(a) && a > -9.2e18 && a < 9.2e18 && check___fixdfdi(a) != (int64_t)a)
    fail("fix", a, 0, (uint64_t)check___fixdfdi(a), (uint64_t)(int64_t)a);
}
static void integer(uint64_t u) {
  double s = check___floatdidf((int64_t)u), v = check___floatundidf(u);
  if (!same(s, (double)(int64_t)u)) fail("floatdi", (double)(int64_t)u, 0, bits(s), bits((double)(int64_t)u));
  if (!same(v, (double)u)) fail("floatundi", (double)u, 0, bits(v), bits((double)u));
}
int main(void) {
  const double edges[] = {0.0, -0.0, 1.0, -1.0, 0.5, 1.5, 2.5, -2.5, 3.0, 0.75, 1e-310, -1e-310, 4.9e-324,
                          2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308,
                          INFINITY, -INFINITY, NAN, 1e300, 1e-300, 0.1, 3.0e15, 4503599627370495.5,
                          9007199254740993.0, 0.75, 1.0 / 3.0, 123456789.0, -0.999999, 4.5e15};
  int n = sizeof edges / sizeof edges[0];
  for (int i = 0; i < n; i++) {
    one(edges[i]);
    for (int j = 0; j < n; j++) pair(edges[i], edges[j]);
  }
  const uint64_t integers[] = {0, 1, 2, 3, (1ull << 53) + 1, (1ull << 53) + 3, (1ull << 63), ~0ull, 0x7fffffffffffffffull,
                               0x8000000000000001ull, 0x20000000000001ull, 0x40000000000003ull};
  for (unsigned i = 0; i < sizeof integers / sizeof integers[0]; i++) integer(integers[i]);
  for (long i = 0; i < 1000000; i++) {
    uint64_t x = next(), y = next();
    // Half the operands near each other's exponents (mostly normal results), the
    // rest any bit pattern (subnormals, overflow, underflow, NaNs).
    if (i & 1) { x = (x & 0x800fffffffffffffull) | ((uint64_t)(1023 - 40 + (next() % 80)) << 52);
                 y = (y & 0x800fffffffffffffull) | ((uint64_t)(1023 - 40 + (next() % 80)) << 52); }
    pair(value(x), value(y));
    one(value(x));
    integer(next() >> (next() % 64));
  }
  printf("softfloat: %ld cases, %ld differ\n", cases, differ);
  return differ != 0;
}
"""


def main():
    with tempfile.TemporaryDirectory() as work:
        driver = os.path.join(work, "driver.c")
        binary = os.path.join(work, "softfloat_check")
        with open(driver, "w") as f:
            f.write(DRIVER)
        compiler = os.environ.get("CC", "cc")
        subprocess.run([compiler, "-O1", "-fno-builtin", "-ffp-contract=off", "-DSOFTFLOAT_HOST_CHECK", SOURCE, driver,
                        "-lm", "-o", binary], check=True)
        result = subprocess.run([binary])
        sys.exit(result.returncode)


if __name__ == "__main__":
    main()
