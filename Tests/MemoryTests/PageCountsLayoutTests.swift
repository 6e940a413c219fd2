import KernelSync
@testable import PageFrames
import Testing

/// The layout facts the page allocator's lock-free count reads rely on.
@Suite struct PageCountsLayoutTests {
  @Test("counts are the first field of both locked states, and a CPU's record fits its 128 bytes")
  func layout() {
    #expect(MemoryLayout<BuddyCore>.offset(of: \.counts) == 0)
    #expect(MemoryLayout<CPUPageCache>.offset(of: \.counts) == 0)
    #expect(SpinLocked<CPUPageCache>.byteCount <= CPUPageCache.stride)
    #expect(PageCounts.kinds > Int(PageOwner.allCases.map(\.rawValue).max() ?? 0))
  }
}
