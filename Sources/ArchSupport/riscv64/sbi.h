// Calls into the SBI firmware (OpenSBI): `ecall` from S-mode with the extension id in
// a7, the function id in a6 and up to four arguments; the firmware answers an error
// code (0: success) and a value. Only the riscv64 files include this.
#ifndef ARCH_RISCV64_SBI_H
#define ARCH_RISCV64_SBI_H

#include <stdint.h>

#if defined(__riscv)

#define SBI_EXT_BASE 0x10
#define SBI_EXT_HSM 0x48534D          // "HSM": hart_start, hart_stop
#define SBI_EXT_SRST 0x53525354       // "SRST": system reset
#define SBI_EXT_RFENCE 0x52464E43     // "RFNC": remote fences
#define SBI_EXT_LEGACY_SHUTDOWN 0x08

#define SBI_BASE_PROBE_EXTENSION 3
#define SBI_HSM_HART_START 0
#define SBI_HSM_HART_STOP 1
#define SBI_HSM_HART_GET_STATUS 2
#define SBI_SRST_SYSTEM_RESET 0
#define SBI_SRST_SHUTDOWN 0
#define SBI_SRST_REASON_NONE 0
#define SBI_SRST_REASON_FAILURE 1
#define SBI_RFENCE_SFENCE_VMA 1

struct sbi_answer {
  long error;
  long value;
};

static inline struct sbi_answer sbi_call(unsigned long extension, unsigned long function, unsigned long a0,
                                         unsigned long a1, unsigned long a2, unsigned long a3) {
  register unsigned long x10 __asm__("a0") = a0;
  register unsigned long x11 __asm__("a1") = a1;
  register unsigned long x12 __asm__("a2") = a2;
  register unsigned long x13 __asm__("a3") = a3;
  register unsigned long x16 __asm__("a6") = function;
  register unsigned long x17 __asm__("a7") = extension;
  __asm__ volatile("ecall" : "+r"(x10), "+r"(x11) : "r"(x12), "r"(x13), "r"(x16), "r"(x17) : "memory");
  struct sbi_answer answer = {(long)x10, (long)x11};
  return answer;
}

/// Whether the firmware implements `extension` (the base extension's probe).
static inline int sbi_has_extension(unsigned long extension) {
  struct sbi_answer answer = sbi_call(SBI_EXT_BASE, SBI_BASE_PROBE_EXTENSION, extension, 0, 0, 0);
  return answer.error == 0 && answer.value != 0;
}

#endif
#endif
