import PageFrames

/// The kernel's heap, set by `heapInit`. Host tests use their own `Heap` instances.
nonisolated(unsafe) public var kernelHeap: Heap?

/// Bytes memInit reserves for the initial heap.
public let kernelHeapInitialBytes = 1 << 20

/// Sets up the kernel heap over `[heapStart, heapStart + size)`.
///
/// - Parameters:
///   - heapStart: 16-byte aligned; memInit passes the first byte after the page array.
///   - growPages: page-run source for growth (nil: the heap never grows).
///   - growthCeiling: the most bytes the heap may claim, growth included.
/// - Returns: false if the range cannot hold a heap.
/// - Precondition: called once, before the first kmalloc.
/// - Complexity: O(size classes).
@discardableResult
public func heapInit(
  heapStart: UnsafeMutableRawPointer, size: Int = kernelHeapInitialBytes, zeroFill: ZeroFill,
  growPages: HeapGrowPages? = nil, growthCeiling: Int = 64 << 20
) -> Bool {
  kernelHeap = Heap(start: heapStart, size: size, zeroFill: zeroFill, growPages: growPages, growthCeiling: growthCeiling)
  return kernelHeap != nil
}

/// Allocates `size` bytes, 16-byte aligned. `kmalloc(0)` returns a unique minimum block
/// (16 usable bytes). nil when out of memory or for sizes the heap cannot hold (every
/// size in [UInt32.max − 16384, UInt32.max] among them).
/// - Complexity: O(1).
public func kmalloc(_ size: UInt32) -> UnsafeMutableRawPointer? {
  kernelHeap?.allocate(Int(size))
}

/// Frees a kmalloc'd pointer. `kfree(nil)` does nothing. A bad pointer is reported to
/// `badInputHandler` as "kfree: reason address" and changes nothing.
/// - Complexity: O(1).
public func kfree(_ pointer: UnsafeMutableRawPointer?) {
  heapFree(pointer, reportingAs: "kfree")
}

/// Frees on the kernel heap; bad input goes to `badInputHandler` under `function`.
func heapFree(_ pointer: UnsafeMutableRawPointer?, reportingAs function: StaticString) {
  guard let heap = kernelHeap else { return }
  do {
    try heap.deallocate(pointer)
  } catch {
    badInputHandler(BadInputReport(function: function, reason: error.reason.text, address: error.address))
  }
}

/// `size` bytes at a multiple of `alignment` (a power of two up to 4096), or nil.
/// - Complexity: O(1).
public func kmallocAligned(_ size: UInt32, _ alignment: Int) -> UnsafeMutableRawPointer? {
  kernelHeap?.allocate(Int(size), alignment: alignment)
}

/// `count * size` zeroed bytes; nil on overflow or no memory.
/// - Complexity: O(1) plus zeroing.
public func kcalloc(_ count: Int, _ size: Int) -> UnsafeMutableRawPointer? {
  kernelHeap?.allocateZeroed(count: count, size: size)
}

/// Resizes, in place when possible. nil pointer: kmalloc. Size 0: frees, returns nil.
/// A bad pointer is reported as "krealloc: reason address" and nil is returned.
/// - Complexity: O(1) in place, O(size) when moved.
public func krealloc(_ pointer: UnsafeMutableRawPointer?, _ size: UInt32) -> UnsafeMutableRawPointer? {
  heapReallocate(pointer, to: Int(size), reportingAs: "krealloc")
}

/// Reallocates on the kernel heap; bad input goes to `badInputHandler` under `function`
/// and returns nil.
func heapReallocate(_ pointer: UnsafeMutableRawPointer?, to size: Int, reportingAs function: StaticString) -> UnsafeMutableRawPointer? {
  guard let heap = kernelHeap else { return nil }
  do {
    return try heap.reallocate(pointer, to: size)
  } catch {
    badInputHandler(BadInputReport(function: function, reason: error.reason.text, address: error.address))
    return nil
  }
}

/// Runs `Heap.check()` on the kernel heap; nil when intact or when there is no heap.
/// - Complexity: O(blocks + size classes + free blocks).
public func heapCheck() -> HeapCheckFailure? {
  kernelHeap?.check()
}
