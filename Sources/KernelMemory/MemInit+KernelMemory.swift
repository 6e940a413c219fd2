import KernelHeap
import MemInit
import PageFrames

extension KernelMemory {
  /// Builds the kernel's memory for `config` laid out as `layout`: the page array and
  /// its reservations, then `heapInit` right after it.
  /// - Throws: `MemInitError` from `buildPageFrames` (`directMapMisaligned`,
  ///   `setUpInconsistent`) and `heapInit`.
  /// - Complexity: O(pages) (zeroing 16 bytes per page).
  public init(_ config: MemInitConfig, layout: BootLayout) throws(MemInitError) {
    let frames = try buildPageFrames(config, layout)
    let heap = try heapInit(config, layout, frames: frames)
    self.init(frames: frames, heap: heap)
  }
}

/// Boot-time memory set-up, in order: plan the layout after `__end`, build and zero the
/// page array, reserve firmware, kernel, array, heap and DTB pages, free the rest, then
/// `heapInit` at the first byte after the array's last page. Installs the result as
/// `kernelMemory`.
///
/// - Returns: the layout; `MemoryMap(kernelMemory.frames)` gives the boot log's map.
/// - Throws: `MemInitError` when RAM is too small, the image lies outside it or the
///   heap size is unusable; `kernelMemory` is left not set up then, so every entry
///   point reports it.
/// - Throws: also `alreadySetUp` when the kernel's memory is installed already (the
///   first `memInit` stays in force).
/// - Precondition: called early, before any allocation, before other cores run.
/// - Complexity: O(pages) (zeroing 16 bytes per page).
@discardableResult
public func memInit(_ config: MemInitConfig) throws(MemInitError) -> BootLayout {
  guard !kernelMemory.isReady else { throw MemInitError(.alreadySetUp, 0) }
  let layout = try planLayout(config)
  installKernelMemory(try KernelMemory(config, layout: layout))
  return layout
}
