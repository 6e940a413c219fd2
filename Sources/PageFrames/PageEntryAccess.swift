import KernelSyncAtomics

// Atomic access to the page array. Entries are the source of truth for who owns a page,
// and CPUs read them without a lock (ownership lookups on a free path, the run scan), so
// every field is read and written with relaxed atomics: plain loads and stores on
// the CPU, visible as atomic to the compiler and to ThreadSanitizer.
extension UnsafeMutablePointer where Pointee == PageEntry {
  @inlinable @inline(__always)
  func nextPointer(_ index: Int) -> UnsafeMutablePointer<UInt32> {
    UnsafeMutableRawPointer(self + index).assumingMemoryBound(to: UInt32.self)
  }

  @inlinable @inline(__always)
  func prevPointer(_ index: Int) -> UnsafeMutablePointer<UInt32> {
    UnsafeMutableRawPointer(self + index).advanced(by: 4).assumingMemoryBound(to: UInt32.self)
  }

  @inlinable @inline(__always)
  func wordPointer(_ index: Int) -> UnsafeMutablePointer<UInt64> {
    UnsafeMutableRawPointer(self + index).advanced(by: 8).assumingMemoryBound(to: UInt64.self)
  }

  /// Entry `index`'s owner/order/flags word.
  @inlinable @inline(__always)
  func loadWord(_ index: Int) -> UInt64 { ks_load_relaxed64(wordPointer(index)) }

  /// Entry `index`, every field read atomically.
  @inlinable @inline(__always)
  func loadEntry(_ index: Int) -> PageEntry {
    PageEntry(next: ks_load_relaxed32(nextPointer(index)), prev: ks_load_relaxed32(prevPointer(index)), word: loadWord(index))
  }

  /// Writes entry `index`, every field atomically.
  @inline(__always)
  func setEntry(_ index: Int, next: UInt32, prev: UInt32, word: UInt64) {
    ks_store_relaxed32(nextPointer(index), next)
    ks_store_relaxed32(prevPointer(index), prev)
    ks_store_relaxed64(wordPointer(index), word)
  }

  @inline(__always)
  func setNext(_ index: Int, _ value: UInt32) { ks_store_relaxed32(nextPointer(index), value) }

  @inline(__always)
  func setPrev(_ index: Int, _ value: UInt32) { ks_store_relaxed32(prevPointer(index), value) }

  @inline(__always)
  func setWord(_ index: Int, _ value: UInt64) { ks_store_relaxed64(wordPointer(index), value) }

  /// Takes run head `index` from its owner: its word goes from `expected` to
  /// `replacement` in one compare-and-swap. Every path that frees a run (onto a CPU's
  /// cache or into the buddy lists, under whichever lock) passes here first, so of two
  /// CPUs freeing one run, whatever paths they take, exactly one gets it.
  /// - Returns: whether this call took it.
  @inline(__always)
  func claimRun(_ index: Int, expected: UInt64, replacement: UInt64) -> Bool {
    ks_compare_exchange64(wordPointer(index), expected, replacement)
  }
}
