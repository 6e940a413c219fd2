// The kernel's sampling memory-error detector (KFENCE): a `GuardedPool` in its own
// stretch of the kernel's address space, above the vmalloc range, with a page frame
// behind each slot that is mapped while the slot holds an object. `kfence=N` on the
// command line samples one allocation in N per CPU; 0 (the default) leaves it off.
#if os(none)
import Arch
import ArchSupport
import KernelHeap
import KernelMemory
import PageFrames
import VirtualMemory

/// The first guard page of the kernel's guarded pool: just above the vmalloc range.
public var kernelGuardedPoolBase: UInt { BoardPlatform().translationFormat.vmallocWindow.upperBound }

/// Sets the detector up over the kernel heap: `slots` slots (each a page between guard
/// pages), one allocation in `interval` per CPU sampled. Prints one line saying so.
/// - Returns: false, printing why, with no kernel map, no heap, or no memory for the
///   slots' frames and the control block (nothing is kept then).
/// - Precondition: boot, before the other cores run.
/// - Complexity: O(slots).
@discardableResult
public func setUpKernelGuardedPool(interval: Int, slots: Int = GuardedPool.defaultSlots) -> Bool {
  guard interval > 0, slots >= 1, slots <= GuardedPool.maximumSlots else { return false }
  guard kernelAddressSpace != nil, let heap = kernelMemory.heap, let frames = kernelMemory.frames else {
    kput("kfence: off (no kernel map)\n")
    return false
  }
  let controlPages = (GuardedPool.controlBytes(slots: slots, cpuSlots: heap.slots) + Page.size - 1) >> Page.shift
  guard let backing = frames.allocContiguous(pages: slots, zeroed: false) else {
    kput("kfence: off (no memory for the slots)\n")
    return false
  }
  guard let control = frames.allocContiguous(pages: controlPages, zeroed: true) else {
    try? frames.freeContiguous(backing, pages: slots)
    kput("kfence: off (no memory for the control block)\n")
    return false
  }
  let hooks = GuardedPoolHooks(
    context: UnsafeMutableRawPointer(bitPattern: frames.physical(of: backing)),
    setAccessible: { context, page, accessible in
      guard let space = kernelAddressSpace else { return false }
      // Slot pages are every other page from the base: slot n is backed by frame n.
      let slot = (page &- kernelGuardedPoolBase) >> UInt(Page.shift + 1)
      let physical = UInt(bitPattern: context) &+ slot << UInt(Page.shift)
      do throws(VirtualMemoryError) {
        if accessible {
          try space.map(page, physical, pages: 1, .kernelData)
        } else {
          _ = try space.unmap(page, pages: 1)
        }
        return true
      } catch {
        return false
      }
    },
    captureStack: { _, buffer, capacity in
      buffer.withMemoryRebound(to: UInt64.self, capacity: capacity) { Int(arch_capture_stack($0, capacity)) }
    },
    write: { _, bytes, count in kput(bytes: UnsafeBufferPointer(start: bytes, count: count)) },
    fatal: { _ in Machine.exit(4) })
  guard let pool = GuardedPool(
    base: kernelGuardedPoolBase, slots: slots, interval: interval, cpuSlots: heap.slots, control: control, hooks: hooks),
    heap.attach(pool)
  else {
    try? frames.freeContiguous(control, pages: controlPages)
    try? frames.freeContiguous(backing, pages: slots)
    return false
  }
  kput("kfence: ")
  kputDecimal(UInt(slots))
  kput(" slots at [")
  kputHex(pool.base)
  kput(", ")
  kputHex(pool.end)
  kput("), one allocation in ")
  kputDecimal(UInt(interval))
  kput(" per cpu\n")
  return true
}

/// The exception handler's question for a data abort at `far`: when it lies in the
/// guarded pool, prints the detector's report (the handler then prints the registers
/// and backtrace and exits with status 4) and returns 1; otherwise 0.
@_cdecl("kernel_describe_pool_fault")
func kernelDescribePoolFault(_ far: UInt, _ isWrite: Int32) -> Int32 {
  guard let pool = kernelMemory.heap?.guardedPool, pool.reportFault(at: far, isWrite: isWrite != 0, fatal: false) else { return 0 }
  return 1
}
#endif
