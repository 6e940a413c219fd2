import KernelSync
@testable import PageFrames
import Testing

/// The layout facts the page allocator's lock-free count reads rely on.
@Suite struct PageCountsLayoutTests {
  @Test("a CPU's lock and state end before its share of the counts, which ends within its 128 bytes")
  func layout() {
    #expect(SpinLocked<CPUPageCache>.byteCount <= CPUPageCache.countsOffset)
    #expect(CPUPageCache.countsOffset + PageCounts.bytes <= CPUPageCache.stride)
    #expect(PageCounts.kinds > Int(PageOwner.allCases.map(\.rawValue).max() ?? 0))
  }
}
