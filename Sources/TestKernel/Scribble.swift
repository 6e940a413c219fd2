// `scribble`: an oracle the memory subsystem does not control. At entry, before
// memInit, the test kernel hashes what firmware and the loader put in RAM (the device
// tree, the initrd /chosen names, and the kernel's own .text and .rodata up to `text=`);
// after the boot it takes every free page from the page allocator, fills each with a
// pattern and hashes again. A page handed out that was not free (one of the tree's, the
// initrd's or the image's) changes a hash. The hashes are printed, so the test runner
// can compare the initrd's and the image's with the files it gave QEMU.
#if os(none)
import KernelMemory
import Arch
import ArchSupport
import FlattenedDeviceTree
import KernelPlatform
import PageFrames
import Scenarios

/// The FNV-1a offset basis and prime (64 bits).
let fnvOffsetBasis: UInt64 = 0xCBF2_9CE4_8422_2325
let fnvPrime: UInt64 = 0x100_0000_01B3

/// FNV-1a over the bytes [start, end), byte by byte (the runner computes the same).
/// - Complexity: O(end - start).
func fnv1a(_ start: UInt, _ end: UInt) -> UInt64 {
  var hash = fnvOffsetBasis
  guard end > start, let base = UnsafePointer<UInt8>(bitPattern: start) else { return hash }
  for i in 0..<Int(end - start) {
    hash = (hash ^ UInt64(base[i])) &* fnvPrime
  }
  return hash
}

/// One hashed range of physical memory.
struct HashedRange {
  let name: StaticString
  let start: UInt
  let end: UInt
  let hash: UInt64

  init(_ name: StaticString, start: UInt, end: UInt) {
    self.name = name
    self.start = start
    self.end = end
    hash = fnv1a(start, end)
  }

  /// Whether the range still hashes as it did.
  var intact: Bool { fnv1a(start, end) == hash }
}

/// The ranges hashed at entry: the tree, the initrd, the image's .text and .rodata.
struct EntryHashes {
  var ranges: (HashedRange?, HashedRange?, HashedRange?) = (nil, nil, nil)

  var list: [HashedRange?] { [ranges.0, ranges.1, ranges.2] }

  /// Hashes what is found: called before `bootMemory`, while nothing has allocated.
  /// `textEnd` outside the image (or nil) leaves the image out.
  /// - Complexity: O(tree + initrd + image bytes).
  static func take(textEnd: UInt?) -> EntryHashes {
    var hashes = EntryHashes()
    let board = BoardPlatform()
    if let blob = board.deviceTree() {
      let start = blob.physicalAddress
      hashes.ranges.0 = HashedRange("dtb", start: start, end: start + UInt(blob.bytes.count))
      if let initrd = initrdRange(blob.bytes) {
        hashes.ranges.1 = HashedRange("initrd", start: initrd.start, end: initrd.end)
      }
    }
    let image = board.kernelImage
    if let end = textEnd, end > image.start, end <= arch_bss_start() {
      hashes.ranges.2 = HashedRange("kernel text+rodata", start: image.start, end: end)
    }
    return hashes
  }
}

/// The initrd /chosen names (`linux,initrd-start`, `linux,initrd-end`), or nil.
/// - Complexity: O(tree bytes).
func initrdRange(_ blob: UnsafeRawBufferPointer) -> (start: UInt, end: UInt)? {
  guard let tree = try? FlattenedDeviceTree(blob: blob) else { return nil }
  var walker = tree.walk()
  var inChosen = false
  var start: UInt64? = nil
  var end: UInt64? = nil
  while true {
    let token: DeviceTreeToken?
    do throws(DeviceTreeError) { token = try walker.next() } catch { return nil }
    guard let token else { break }
    switch token {
    case .beginNode(let name):
      inChosen = walker.depth == 2 && name.equals("chosen")
    case .endNode:
      inChosen = false
    case .property(let property):
      guard inChosen else { continue }
      if property.name.equals("linux,initrd-start") { start = property.number }
      if property.name.equals("linux,initrd-end") { end = property.number }
    }
  }
  guard let start, let end, end > start else { return nil }
  return (UInt(start), UInt(end))
}

/// The pattern written to the word at `address`.
func scribblePattern(_ address: UInt) -> UInt64 { UInt64(address) ^ 0x5C21_BB1E_5C21_BB1E }

/// Takes every free page, fills it with the pattern, checks the entry hashes and the
/// pattern, gives the pages back. Prints each range's hash (`scribble: dtb [a, b) fnv H`)
/// and the page count.
///
/// Preconditions: `bootMemory` has run; nothing else allocates meanwhile (the other
/// cores are parked).
/// - Complexity: O(free pages × page size).
func scribbleCase(_ hashes: EntryHashes) -> Expectations {
  var e = Expectations()
  let frames = bootFrames
  let before = frames.freePageCount
  var head: UnsafeMutableRawPointer? = nil
  var pages = 0
  let words = Page.size / MemoryLayout<UInt64>.stride
  while let page = allocPage() {
    let words64 = page.bindMemory(to: UInt64.self, capacity: words)
    let base = UInt(bitPattern: page)
    for i in 1..<words { words64[i] = scribblePattern(base + UInt(i * 8)) }
    page.storeBytes(of: head, as: UnsafeMutableRawPointer?.self)
    head = page
    pages += 1
  }
  e.expect(pages == before, "scribble: every free page handed out", UInt(pages))
  for entry in hashes.list {
    guard let range = entry else { continue }
    kput("scribble: ")
    kput(range.name)
    kput(" [")
    kputHex(range.start, digits: 8)
    kput(", ")
    kputHex(range.end, digits: 8)
    kput(") fnv ")
    kputHex(UInt(range.hash), digits: 16)
    let intact = range.intact
    kput(intact ? " intact\n" : " CHANGED\n")
    e.expect(intact, "scribble: a range hashed at entry changed (start)", range.start)
  }
  var patternIntact = true
  var freed = 0
  while let page = head {
    let words64 = page.bindMemory(to: UInt64.self, capacity: words)
    let base = UInt(bitPattern: page)
    if words64[words - 1] != scribblePattern(base + UInt((words - 1) * 8)) { patternIntact = false }
    head = page.load(as: UnsafeMutableRawPointer?.self)
    freePage(page)
    freed += 1
  }
  e.expect(patternIntact, "scribble: a page's pattern changed: handed out twice", 0)
  e.expect(freed == pages && frames.freePageCount == before, "scribble: pages lost", UInt(frames.freePageCount))
  kput("scribble: ")
  kputDecimal(UInt(pages))
  kput(" free pages written (")
  kputDecimal(UInt(pages) >> 8)
  kput(" MiB)\n")
  return e
}

#endif
