import PageFrames
import VirtualMemory

// vmalloc, vfree and the kvmalloc fallback over the kernel's address space (set by the
// boot sequence once the kernel map is in use). Before that, or in a kernel that builds
// no map, vmalloc has nothing to give and kvmalloc is kmalloc.

/// Virtually contiguous, zeroed, kernel read-write memory of `size` bytes from
/// scattered page frames, page aligned, with an unmapped guard page after it; nil for
/// a size that is not positive, when out of frames or virtual space, or with no kernel
/// map.
/// - Complexity: O(pages) allocations and mappings, plus O(areas) to find room.
public func vmalloc(_ size: Int) -> UnsafeMutableRawPointer? {
  guard let space = kernelAddressSpace else { return nil }
  return try? space.vmalloc(size)
}

/// Frees a vmalloc area. `vfree(nil)` does nothing. Anything but an area's start is
/// reported to `badInputHandler` as "vfree: not the start of a vmalloc area address"
/// and changes nothing.
/// - Complexity: O(areas + pages).
public func vfree(_ pointer: UnsafeMutableRawPointer?) {
  guard let pointer else { return }
  do throws(VirtualMemoryError) {
    guard let space = kernelAddressSpace else { throw VirtualMemoryError(.notVmallocArea, UInt(bitPattern: pointer)) }
    try space.vfree(pointer)
  } catch {
    badInputHandler(error.report("vfree"))
  }
}

/// kmalloc, and for a request above one page that finds no physically contiguous memory,
/// vmalloc (Linux's kvmalloc). nil when neither can serve it.
/// - Complexity: kmalloc's, plus vmalloc's when it falls back.
public func kvmalloc(_ size: Int) -> UnsafeMutableRawPointer? {
  if let pointer = kmalloc(size) { return pointer }
  guard size > Page.size else { return nil }
  return vmalloc(size)
}

/// Frees what kvmalloc returned: vfree inside the vmalloc range, kfree elsewhere.
/// `kvfree(nil)` does nothing; a bad pointer is reported as kfree or vfree reports it.
/// - Complexity: as kfree or vfree.
public func kvfree(_ pointer: UnsafeMutableRawPointer?) {
  guard let pointer else { return }
  if let range = kernelAddressSpace?.vmallocRange, range.contains(UInt(bitPattern: pointer)) {
    vfree(pointer)
  } else {
    kfree(pointer)
  }
}
