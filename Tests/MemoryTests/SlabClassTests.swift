import KernelMemory
@testable import KernelHeap
import Testing

/// The size classes kmalloc serves from slabs, against their definition: a request gets
/// the smallest class whose objects hold it.
@Suite struct SlabClassTests {
  @Test("every request up to the limit: the granule table and the arithmetic give the smallest class that fits")
  func classes() {
    let table = SlabClass.granuleTable(scale: 1)
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

  @Test("object index by reciprocal: for every slot size, every address in a slab against division")
  func objectIndexAgainstDivision() {
    let base: UInt = 0x10_0000
    let slab = Slab(address: base)
    var mismatches = 0
    // Every slot an object cache or a size class can have: multiples of 16 up to 4 KiB.
    for slot in stride(from: 16, through: SlabCache.maximumObjectSize, by: 16) {
      guard let layout = SlabCache.layout(size: slot, alignment: 16) else {
        Issue.record("no layout for \(slot)")
        continue
      }
      let reciprocal = (UInt64(1) << 32) / UInt64(layout.slot) + 1
      let objectsBytes = UInt(layout.capacity * layout.slot)
      let slabBytes = UInt(4096 << layout.order)
      // Every 16-byte address of the slab and some more, and unaligned ones near objects.
      for offset in stride(from: UInt(0), to: slabBytes + 64, by: 8) {
        let address = base + offset
        let got = SlabCache.objectIndex(address, in: slab, firstOffset: layout.first, objectsBytes: objectsBytes, reciprocal: reciprocal)
        // The reference: plain division of the offset from object 0.
        var expected: Int? = nil
        if offset >= UInt(layout.first) {
          let inside = offset - UInt(layout.first)
          if inside < objectsBytes && inside % UInt(layout.slot) == 0 { expected = Int(inside / UInt(layout.slot)) }
        }
        if got != expected { mismatches += 1 }
      }
    }
    #expect(mismatches == 0)
  }
}
