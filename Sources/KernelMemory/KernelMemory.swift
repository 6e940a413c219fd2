import KernelHeap
import PageFrames

/// The kernel's memory as one object, the facade over the modules below: the page-frame
/// allocator, the heap that grows from it, and the object caches the heap keeps. It is
/// the only type that knows all three, and none of them knows it.
///
/// Ownership: the object is noncopyable, and the kernel's one instance is created by
/// `memInit` and installed once in `kernelMemory` (a second `memInit` is refused, see
/// `installKernelMemory`). Host tests and second kernels create their own, over memory of
/// their own. The page allocator and heap it hands out (`frames`, `heap`) are handles,
/// views over state that lives in the managed memory: valid as long as that memory is,
/// which for the installed object is until the machine stops (it has no deinit, as
/// nothing is given back when RAM stops being managed).
///
/// Before it is set up (or after memInit failed) every entry point reports
/// `KernelMemory.notSetUpReason` to `badInputHandler` and returns nil or does nothing.
public struct KernelMemory: ~Copyable {
  /// The heap first: its pointer is what tells a set-up object from an empty one, so an
  /// entry point's readiness test is the load of the heap it then uses.
  private let parts: (heap: Heap, frames: PageFrameAllocator)?

  /// The reason reported by every entry point used before a successful memInit.
  public static let notSetUpReason: StaticString = "memory not set up (memInit not run, or it failed)"
  /// The reason reported when allocPages/allocContiguous get an owner an allocation
  /// cannot have (the address field carries the owner's raw value).
  public static let badOwnerReason: StaticString = "owner not accepted for an allocation"

  /// An object that is not set up yet.
  /// - Complexity: O(1).
  public init() { parts = nil }

  /// The object over a set-up page allocator and a heap that grows from it.
  /// - Complexity: O(1).
  public init(frames: PageFrameAllocator, heap: Heap) { parts = (heap, frames) }

  /// Whether memInit (or `init(frames:heap:)`) has set it up.
  public var isReady: Bool { parts != nil }
  /// The page-frame allocator, once set up.
  public var frames: PageFrameAllocator? { parts?.frames }
  /// The heap, once set up.
  public var heap: Heap? { parts?.heap }

  // MARK: Heap

  /// `size` bytes at a multiple of `alignment` (a power of two up to 4096), or nil;
  /// not set up: reported as `function`.
  /// - Complexity: O(1), as `Heap.allocate`.
  public func allocate(_ size: Int, alignment: Int = 16, function: StaticString) -> UnsafeMutableRawPointer? {
    guard let heap = ready(function, 0)?.heap else { return nil }
    return alignment == 16 ? heap.allocate(size) : heap.allocate(size, alignment: alignment)
  }

  /// `count * size` zeroed bytes; nil on overflow or no memory.
  /// - Complexity: O(1) plus zeroing.
  public func allocateZeroed(count: Int, size: Int, function: StaticString) -> UnsafeMutableRawPointer? {
    ready(function, 0)?.heap.allocateZeroed(count: count, size: size)
  }

  /// Frees a heap allocation; nil does nothing. Bad input is reported as
  /// "caller: reason address" and changes nothing.
  /// - Complexity: O(log ranges), as `Heap.deallocate`.
  public func free(_ pointer: UnsafeMutableRawPointer?, caller: Heap.FreeCaller) {
    // The heap's free passes nil on to its general path, which ignores it: no test here.
    guard let heap = parts?.heap else {
      if pointer != nil { _ = ready(caller.name, UInt(bitPattern: pointer)) }
      return
    }
    heap.free(pointer, reportingAs: caller)
  }

  /// Resizes a heap allocation as `Heap.reallocate`; bad input is reported and gets nil.
  /// - Complexity: O(log ranges) in place, O(size) when it moves.
  public func reallocate(_ pointer: UnsafeMutableRawPointer?, to size: Int, function: StaticString) -> UnsafeMutableRawPointer? {
    guard let heap = ready(function, UInt(bitPattern: pointer))?.heap else { return nil }
    do {
      return try heap.reallocate(pointer, to: size)
    } catch {
      badInputHandler(error.report(function))
      return nil
    }
  }

  // MARK: Object caches

  /// A new object cache in the kernel heap; nil (reported when memory is not set up)
  /// for a size outside 1...4096, an alignment that is not a power of two up to 4096,
  /// or no memory.
  /// - Complexity: O(1).
  public func makeObjectCache(objectSize: Int, alignment: Int, function: StaticString) -> ObjectCache? {
    guard let heap = ready(function, 0)?.heap else { return nil }
    return ObjectCache(heap: heap, objectSize: objectSize, alignment: alignment)
  }

  // MARK: Page frames

  /// 2^order pages for `owner`, zeroed when asked; nil when none is free. An order out of
  /// range or an owner `allocPages` does not accept is reported.
  /// - Complexity: as `PageFrameAllocator.allocPages`.
  public func allocPages(order: Int, owner: PageOwner, zeroed: Bool = true, function: StaticString) -> UnsafeMutableRawPointer? {
    guard let frames = ready(function, 0)?.frames, accepts(owner, function) else { return nil }
    guard order >= 0 && order <= Page.maxOrder else {
      badInputHandler(BadInputReport(function: function, reason: PageFrameFailure.badOrder.text, address: UInt(bitPattern: order)))
      return nil
    }
    return frames.allocPages(order: order, owner: owner, zeroed: zeroed)
  }

  /// `pages` contiguous pages for `owner`; nil when no such run is free. A count below 1
  /// or an owner that is not accepted is reported.
  /// - Complexity: as `PageFrameAllocator.allocContiguous`.
  public func allocContiguous(pages: Int, owner: PageOwner, zeroed: Bool = true, function: StaticString) -> UnsafeMutableRawPointer? {
    guard let frames = ready(function, 0)?.frames, accepts(owner, function) else { return nil }
    guard pages > 0 else {
      badInputHandler(BadInputReport(function: function, reason: PageFrameFailure.badOrder.text, address: UInt(bitPattern: pages)))
      return nil
    }
    return frames.allocContiguous(pages: pages, owner: owner, zeroed: zeroed)
  }

  /// Frees a run of 2^order pages (`pages == nil`) or of `pages` pages; bad input is
  /// reported as "function: reason address" and changes nothing.
  /// - Complexity: as `PageFrameAllocator.freePages` / `freeContiguous`.
  public func freePages(_ run: UnsafeMutableRawPointer, order: Int = 0, pages: Int? = nil, owner: PageOwner, function: StaticString) {
    guard let frames = ready(function, UInt(bitPattern: run))?.frames else { return }
    do throws(PageFrameError) {
      if let pages {
        try frames.freeContiguous(run, pages: pages, owner: owner)
      } else {
        try frames.freePages(run, order: order, owner: owner)
      }
    } catch {
      badInputHandler(error.report(function))
    }
  }

  /// Shrinks a run from `allocContiguous` to its first `keep` pages; bad input is
  /// reported as "function: reason address" and changes nothing.
  /// - Complexity: as `PageFrameAllocator.shrinkContiguous`.
  public func shrinkContiguous(_ run: UnsafeMutableRawPointer, pages: Int, keep: Int, owner: PageOwner, function: StaticString) {
    guard let frames = ready(function, UInt(bitPattern: run))?.frames else { return }
    do throws(PageFrameError) {
      try frames.shrinkContiguous(run, pages: pages, keep: keep, owner: owner)
    } catch {
      badInputHandler(error.report(function))
    }
  }

  /// See `kmemDrainCaches`.
  /// - Complexity: as `kmemDrainCaches`.
  public func drainCaches() {
    guard let parts else { return }
    parts.heap.releaseCachedMemory()
    parts.frames.drainHotPages()
  }

  /// The parts, or nil after reporting that memory is not set up.
  private func ready(_ function: StaticString, _ address: UInt) -> (heap: Heap, frames: PageFrameAllocator)? {
    if parts == nil { badInputHandler(BadInputReport(function: function, reason: KernelMemory.notSetUpReason, address: address)) }
    return parts
  }

  private func accepts(_ owner: PageOwner, _ function: StaticString) -> Bool {
    if owner.isAllocatable { return true }
    badInputHandler(BadInputReport(function: function, reason: KernelMemory.badOwnerReason, address: UInt(owner.rawValue)))
    return false
  }
}

