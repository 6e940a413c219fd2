// The double-precision routines the compiler calls on a soft-float target (RISC-V
// lp64: no F/D registers in the ABI) for the Double arithmetic Swift code does (the
// standard library's hash table sizing, statistics): multiply, divide, integer
// conversions, comparisons, and ceil. The toolchain ships no compiler-rt for
// riscv64-none-none-eabi, so the kernel brings its own. IEEE 754 binary64, round to
// nearest even, subnormals kept. scripts/softfloat_check.py compares every routine
// with the host's hardware on random and edge-case operands.
#include <stdint.h>

#if (defined(__riscv) && __riscv_xlen == 64 && !defined(__linux__)) || defined(SOFTFLOAT_HOST_CHECK)

#ifdef SOFTFLOAT_HOST_CHECK
#define SOFTFLOAT(name) check_##name
#else
#define SOFTFLOAT(name) name
#endif

#define SIGN_BIT (1ull << 63)
#define FRACTION_MASK ((1ull << 52) - 1)
#define IMPLICIT_BIT (1ull << 52)
#define EXPONENT_MAX 2047
#define BIAS 1023
#define INFINITY_BITS 0x7ff0000000000000ull
#define QUIET_NAN_BITS 0x7ff8000000000000ull

static uint64_t bits_of(double value) {
  union { double d; uint64_t u; } pun = {.d = value};
  return pun.u;
}

static double double_of(uint64_t bits) {
  union { double d; uint64_t u; } pun = {.u = bits};
  return pun.d;
}

static int is_nan(uint64_t bits) { return (bits & ~SIGN_BIT) > INFINITY_BITS; }
static int is_infinite(uint64_t bits) { return (bits & ~SIGN_BIT) == INFINITY_BITS; }
static int is_zero(uint64_t bits) { return (bits & ~SIGN_BIT) == 0; }

// A finite non-zero operand as significand in [2^52, 2^53) and biased exponent
// (subnormals normalized: their exponent may go below 1).
static uint64_t unpack(uint64_t bits, int *exponent) {
  int biased = (int)((bits >> 52) & 0x7ff);
  uint64_t fraction = bits & FRACTION_MASK;
  if (biased == 0) {
    biased = 1;
    while ((fraction & IMPLICIT_BIT) == 0) {
      fraction <<= 1;
      biased--;
    }
    *exponent = biased;
    return fraction;
  }
  *exponent = biased;
  return fraction | IMPLICIT_BIT;
}

// The double nearest (ties to even) to sign × m / 2^55 × 2^(exponent - BIAS), m in
// [2^55, 2^56) with its lowest bit sticky: overflow gives infinity, underflow a
// subnormal or zero.
static double round_pack(uint64_t sign, int exponent, uint64_t m) {
  if (exponent >= EXPONENT_MAX) return double_of(sign | INFINITY_BITS);
  if (exponent <= 0) {
    int shift = 1 - exponent;
    m = shift >= 64 ? (m != 0) : (m >> shift) | ((m & ((1ull << shift) - 1)) != 0);
    exponent = 0;
  }
  uint64_t significand = m >> 3;
  unsigned rest = (unsigned)(m & 7);
  if (rest > 4 || (rest == 4 && (significand & 1))) significand++;
  // A carry out of the significand moves into the exponent field, as it should.
  if (exponent == 0) return double_of(sign | significand);
  return double_of(sign | ((((uint64_t)(exponent - 1)) << 52) + significand));
}

// 64 × 64 → 128 bits, from 32-bit halves (no 128-bit multiply routine needed).
static void multiply_wide(uint64_t a, uint64_t b, uint64_t *high, uint64_t *low) {
  uint64_t a_low = a & 0xffffffffu, a_high = a >> 32, b_low = b & 0xffffffffu, b_high = b >> 32;
  uint64_t low_low = a_low * b_low, low_high = a_low * b_high, high_low = a_high * b_low, high_high = a_high * b_high;
  uint64_t middle = (low_low >> 32) + (low_high & 0xffffffffu) + (high_low & 0xffffffffu);
  *low = (middle << 32) | (low_low & 0xffffffffu);
  *high = high_high + (low_high >> 32) + (high_low >> 32) + (middle >> 32);
}

double SOFTFLOAT(__muldf3)(double a, double b) {
  uint64_t x = bits_of(a), y = bits_of(b), sign = (x ^ y) & SIGN_BIT;
  if (is_nan(x) || is_nan(y)) return double_of(QUIET_NAN_BITS);
  if (is_infinite(x) || is_infinite(y)) {
    if (is_zero(x) || is_zero(y)) return double_of(QUIET_NAN_BITS);
    return double_of(sign | INFINITY_BITS);
  }
  if (is_zero(x) || is_zero(y)) return double_of(sign);
  int ex, ey;
  uint64_t fx = unpack(x, &ex), fy = unpack(y, &ey), high, low;
  multiply_wide(fx, fy, &high, &low);  // the product, in [2^104, 2^106)
  int exponent = ex + ey - BIAS;
  int shift = 49;                      // to [2^55, 2^56)
  if (high >> 41) {                    // product ≥ 2^105
    shift = 50;
    exponent++;
  }
  uint64_t m = (high << (64 - shift)) | (low >> shift) | ((low & ((1ull << shift) - 1)) != 0);
  return round_pack(sign, exponent, m);
}

double SOFTFLOAT(__divdf3)(double a, double b) {
  uint64_t x = bits_of(a), y = bits_of(b), sign = (x ^ y) & SIGN_BIT;
  if (is_nan(x) || is_nan(y)) return double_of(QUIET_NAN_BITS);
  if (is_infinite(x)) return is_infinite(y) ? double_of(QUIET_NAN_BITS) : double_of(sign | INFINITY_BITS);
  if (is_infinite(y)) return double_of(sign);
  if (is_zero(y)) return is_zero(x) ? double_of(QUIET_NAN_BITS) : double_of(sign | INFINITY_BITS);
  if (is_zero(x)) return double_of(sign);
  int ex, ey;
  uint64_t remainder = unpack(x, &ex), divisor = unpack(y, &ey), quotient = 0;
  int exponent = ex - ey + BIAS;
  if (remainder < divisor) {
    remainder <<= 1;
    exponent--;
  }
  // Restoring division: 56 quotient bits, the first one set.
  for (int bit = 0; bit < 56; bit++) {
    quotient <<= 1;
    if (remainder >= divisor) {
      remainder -= divisor;
      quotient |= 1;
    }
    remainder <<= 1;
  }
  return round_pack(sign, exponent, quotient | (remainder != 0));
}

static double from_magnitude(uint64_t sign, uint64_t value) {
  if (value == 0) return double_of(sign);
  int top = 63 - __builtin_clzll(value);
  uint64_t m = top > 55 ? (value >> (top - 55)) | ((value & ((1ull << (top - 55)) - 1)) != 0) : value << (55 - top);
  return round_pack(sign, top + BIAS, m);
}

double SOFTFLOAT(__floatdidf)(int64_t value) {
  return value < 0 ? from_magnitude(SIGN_BIT, 0 - (uint64_t)value) : from_magnitude(0, (uint64_t)value);
}

double SOFTFLOAT(__floatundidf)(uint64_t value) { return from_magnitude(0, value); }

// Toward zero; NaN gives 0, values out of range the nearest bound.
int64_t SOFTFLOAT(__fixdfdi)(double a) {
  uint64_t x = bits_of(a);
  if (is_nan(x)) return 0;
  int biased = (int)((x >> 52) & 0x7ff);
  int64_t negative = (int64_t)(x & SIGN_BIT);
  if (biased < BIAS) return 0;
  if (biased - BIAS >= 63) return negative ? INT64_MIN : INT64_MAX;
  uint64_t significand = (x & FRACTION_MASK) | IMPLICIT_BIT;
  int shift = biased - BIAS - 52;
  uint64_t magnitude = shift >= 0 ? significand << shift : significand >> -shift;
  return negative ? -(int64_t)magnitude : (int64_t)magnitude;
}

// An order-preserving key: negative values reversed below the positive ones; -0 = +0.
static uint64_t order_key(uint64_t bits) {
  if (is_zero(bits)) return SIGN_BIT;
  return (bits & SIGN_BIT) ? ~bits : bits | SIGN_BIT;
}

// -1, 0, 1 for a < b, a = b, a > b; `unordered` when either is NaN.
static int compare(double a, double b, int unordered) {
  uint64_t x = bits_of(a), y = bits_of(b);
  if (is_nan(x) || is_nan(y)) return unordered;
  uint64_t kx = order_key(x), ky = order_key(y);
  return kx < ky ? -1 : kx > ky ? 1 : 0;
}

int SOFTFLOAT(__eqdf2)(double a, double b) { return compare(a, b, 1); }
int SOFTFLOAT(__nedf2)(double a, double b) { return compare(a, b, 1); }
int SOFTFLOAT(__ltdf2)(double a, double b) { return compare(a, b, 1); }
int SOFTFLOAT(__ledf2)(double a, double b) { return compare(a, b, 1); }
int SOFTFLOAT(__gtdf2)(double a, double b) { return compare(a, b, -1); }
int SOFTFLOAT(__gedf2)(double a, double b) { return compare(a, b, -1); }
int SOFTFLOAT(__unorddf2)(double a, double b) { return is_nan(bits_of(a)) || is_nan(bits_of(b)); }

double SOFTFLOAT(ceil)(double a) {
  uint64_t x = bits_of(a);
  int biased = (int)((x >> 52) & 0x7ff);
  if (biased >= BIAS + 52) return is_nan(x) ? double_of(x | (1ull << 51)) : a;  // integral, infinite or NaN
  if (biased < BIAS) {                                                           // |a| < 1
    if (is_zero(x)) return a;
    return (x & SIGN_BIT) ? double_of(SIGN_BIT) : 1.0;
  }
  uint64_t fraction = FRACTION_MASK >> (biased - BIAS);
  if ((x & fraction) == 0) return a;
  if (!(x & SIGN_BIT)) x += fraction + 1;  // up to the next integer (a carry moves the exponent)
  return double_of(x & ~fraction);
}

#endif
