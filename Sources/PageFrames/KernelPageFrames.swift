/// The kernel's page allocator, set by memInit. Host tests use their own instances.
nonisolated(unsafe) public var kernelPageFrames: PageFrameAllocator?

/// One zeroed page from the kernel's allocator, or nil when none is free.
/// - Complexity: O(maxOrder) plus zeroing 4 KiB.
public func allocPage() -> UnsafeMutableRawPointer? {
  kernelPageFrames?.allocPage()
}

/// 2^order zeroed, naturally aligned pages, or nil.
/// - Complexity: O(maxOrder) plus zeroing.
public func allocPages(order: Int) -> UnsafeMutableRawPointer? {
  kernelPageFrames?.allocPages(order: order)
}

/// Returns a page from `allocPage`. Bad input (double free, a reserved page, a
/// misaligned address, an address outside RAM) is reported to `badInputHandler` as
/// "freePage: reason address" and changes nothing.
/// - Complexity: O(maxOrder).
public func freePage(_ page: UnsafeMutableRawPointer) {
  freePages(page, order: 0, function: "freePage")
}

/// Returns a run from `allocPages(order:)`; bad input is reported as for `freePage`.
/// - Complexity: O(maxOrder).
public func freePages(_ run: UnsafeMutableRawPointer, order: Int) {
  freePages(run, order: order, function: "freePages")
}

private func freePages(_ run: UnsafeMutableRawPointer, order: Int, function: StaticString) {
  guard kernelPageFrames != nil else { return }
  do {
    try kernelPageFrames!.freePages(run, order: order)
  } catch {
    badInputHandler(BadInputReport(function: function, reason: error.reason.text, address: error.address))
  }
}
