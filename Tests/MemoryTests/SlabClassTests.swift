import KernelMemory
@testable import KernelHeap
import Testing

/// The size classes kmalloc serves from slabs, against their definition: a request gets
/// the smallest class whose objects hold it.
@Suite struct SlabClassTests {
  @Test("every request up to the limit: the granule table and the arithmetic give the smallest class that fits")
  func classes() {
    let table = SlabClass.granuleTable()
    for size in 0...SlabClass.limit {
      // The reference: a linear scan of the class sizes.
      var smallest = 0
      while SlabClass.objectSize(smallest) < size { smallest += 1 }
      #expect(SlabClass.index(forRequest: size) == smallest, "size \(size)")
      #expect(Int(table[(size + 15) >> 4]) == smallest, "size \(size)")
    }
    #expect(SlabClass.objectSize(SlabClass.count - 1) == SlabClass.limit)
    #expect(table.count == SlabClass.granules)
  }
}
