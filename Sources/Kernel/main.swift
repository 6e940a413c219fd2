#if arch(arm64) && os(none)
import Arch

kput("SwiftKernelMemory on ")
kput(Board.name)
kput(" EL")
kputDecimal(Platform.currentExceptionLevel)
kput("\n")
if let memory = Platform.discoverMemory() {
  kput("RAM ")
  kputHex(memory.ramBase)
  kput(" size ")
  kputHex(memory.ramSize)
  kput("\n")
}
let image = Platform.kernelImage
kput("kernel [")
kputHex(image.start)
kput(", ")
kputHex(image.end)
kput(")\n")
Machine.exit(0)
#else
print("kernel: this target boots under QEMU; run `make run`")
#endif
