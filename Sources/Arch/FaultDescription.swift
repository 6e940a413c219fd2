// What the kernel map says about the address of a data or instruction abort, for the
// exception report (ArchSupport's exception.c calls it after the report line): a stack
// overflow into a guard page, a vmalloc guard page, an unmapped address, or a
// permission fault against a named section.
#if os(none)
import VirtualMemory

/// Prints one line describing `far` for a fault on an access that was a write
/// (`isWrite` non-zero), a read, or an instruction fetch (`instruction` non-zero);
/// nothing before the kernel map is in use. Reads the tables without their lock.
@_cdecl("arch_describe_fault")
func archDescribeFault(_ far: UInt, _ isWrite: Int32, _ instruction: Int32) {
  guard let space = kernelAddressSpace, let regions = kernelMapRegions else { return }
  switch space.describeFault(at: far, regions: regions) {
  case .stackOverflow(let cpu, let guardPage):
    kput("  kernel stack overflow on cpu ")
    kputDecimal(UInt(cpu))
    kput(" (guard page at ")
    kputHex(guardPage)
    kput(")\n")
  case .vmallocGuard(let start, let bytes, let stackOfCPU):
    kput("  guard page of ")
    if let cpu = stackOfCPU {
      kput("the kernel stack of cpu ")
      kputDecimal(UInt(cpu))
      kput(" ")
    } else {
      kput("vmalloc area ")
    }
    kput("[")
    kputHex(start)
    kput(", ")
    kputHex(start &+ bytes)
    kput(")\n")
  case .notMapped:
    kput("  FAR ")
    kputHex(far)
    kput(" is not mapped\n")
  case .permission(let region, let start, let end, let attributes):
    kput("  permission fault: ")
    kput(instruction != 0 ? "instruction fetch from " : (isWrite != 0 ? "write to " : "read from "))
    kput(region)
    kput(" [")
    kputHex(start)
    kput(", ")
    kputHex(end)
    kput(") ")
    kput(attributes.permissions)
    kput("\n")
  }
}

#endif
