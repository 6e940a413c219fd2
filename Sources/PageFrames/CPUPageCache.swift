import KernelSync
import KernelSyncAtomics

/// One CPU's cache of free order-0 pages (Linux's per-CPU page lists, Zircon's per-CPU
/// page cache) and its share of the per-owner page counts: a 128-byte record after the
/// allocator's state, one per `CPU.maximum` slot plus one shared record that the
/// buddy lists' own changes are counted in.
///
/// The pages are linked through their entries' `next` and marked free + `flagHot`, so
/// the page array still tells who owns each of them. The record's lock guards the list
/// and the counts; the allocator's global lock guards the buddy lists. Lock order:
/// a CPU's cache lock, then the global lock, never the reverse.
///
/// A count is written only by the holder of its record's lock, with relaxed atomic
/// stores, and read by anyone with relaxed atomic loads: a sum over the records is
/// exact whenever no CPU is between two updates, and never tears. Shares are 32-bit
/// and wrap: one CPU's share may be negative, and their sum modulo 2^32 is the count
/// (below 2^32, as page indices are).
@usableFromInline
struct CPUPageCache {
  /// Bytes per record: whole cache lines, so two CPUs never write one line.
  static let stride = 128
  /// Pages a cache holds before a free hands a batch back to the buddy lists.
  static let high = 32
  /// Pages moved between a cache and the buddy lists at a time.
  static let batch = 16

  private static let countOffset = 16
  private static let headOffset = 20
  private static let sharesOffset = 64

  let base: UnsafeMutableRawPointer

  /// A CPU record's lock (the first word): a test-and-set lock, as only its own CPU
  /// takes it but for a drain.
  var spin: SpinLock { SpinLock(base.assumingMemoryBound(to: UInt32.self)) }

  /// The shared record's lock (the first word): the global lock. Also a test-and-set
  /// lock: a ticket lock stalls every CPU behind a waiter that is not running (see
  /// `SpinLock`).
  var lock: SpinLock { SpinLock(base.assumingMemoryBound(to: UInt32.self)) }

  /// Pages on the list.
  var count: Int {
    get { Int(base.load(fromByteOffset: CPUPageCache.countOffset, as: UInt32.self)) }
    nonmutating set { base.storeBytes(of: UInt32(truncatingIfNeeded: newValue), toByteOffset: CPUPageCache.countOffset, as: UInt32.self) }
  }

  /// The newest page on the list (an entry index), or `PageEntry.none`.
  var head: UInt32 {
    get { base.load(fromByteOffset: CPUPageCache.headOffset, as: UInt32.self) }
    nonmutating set { base.storeBytes(of: newValue, toByteOffset: CPUPageCache.headOffset, as: UInt32.self) }
  }

  /// Sets the record up empty over zeroed memory.
  func initialize() {
    base.initializeMemory(as: UInt8.self, repeating: 0, count: CPUPageCache.stride)
    head = PageEntry.none
  }

  private func share(_ owner: Int) -> UnsafeMutablePointer<UInt32> {
    (base + CPUPageCache.sharesOffset).assumingMemoryBound(to: UInt32.self) + owner
  }

  /// This record's share of the pages of owner kind `owner`, modulo 2^32 (a CPU that
  /// frees pages another CPU allocated has a "negative" share).
  func pages(ofOwner owner: Int) -> UInt32 { ks_load_relaxed32(share(owner)) }

  /// Adds `delta` to this record's share of `owner`. Holder of the record's lock only.
  @inline(__always)
  func adjust(ofOwner owner: Int, by delta: Int) {
    let slot = share(owner)
    ks_store_relaxed32(slot, ks_load_relaxed32(slot) &+ UInt32(truncatingIfNeeded: delta))
  }
}
