// The libFuzzer target for the device tree readers: each input is a blob handed to
// `DeviceTree(blob:physicalAddress:)` and `describe(into:)` (memory), and to
// `FlattenedDeviceTree(blob:)`, `cores()` (/cpus and /psci) and `forEachDeviceRange`
// (the MMIO ranges). Any outcome but a value
// or a typed error (a trap, a read outside the blob, which AddressSanitizer catches) is
// a finding. What a successful read returns is checked too: every RAM range is page
// aligned, sorted and inside the address space, the blob itself is reserved, a tree
// whose memory reads cleanly also gives its cores (both walk the same structure), one
// whose cores read also gives its device ranges (each non-empty), and no more cpu
// nodes are counted than the blob has room for.
//
// `make fuzz-dtb SECONDS=..` builds it with `--sanitize=fuzzer --sanitize=address` and
// `-DFUZZING`; a plain build replays files: `dtbfuzz FILE...`.
import FlattenedDeviceTree
import FuzzReplay
import Glibc
import MemInit
import PageFrames

/// The fewest bytes a `cpu@...` node takes in the structure block: its begin token,
/// the name "cpu@x" and its NUL padded to 8, its end token.
private let smallestCPUNodeBytes = 16

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  // A copy of exactly `size` bytes, so AddressSanitizer sees any read past the blob.
  let copy = UnsafeMutableRawPointer.allocate(byteCount: max(size, 1), alignment: 8)
  defer { copy.deallocate() }
  if let data, size > 0 { copy.copyMemory(from: data, byteCount: size) }
  let blob = UnsafeRawBufferPointer(start: copy, count: size)
  let cores = readCores(blob)
  var memory = BootMemory()
  do throws(MemInitError) {
    let tree = try DeviceTree(blob: blob, physicalAddress: 0x4000_0000)
    _ = try tree.describe(into: &memory)
  } catch {
    return 0
  }
  guard let cores else { fail("the memory read cleanly but the cores did not") }
  guard cores.cpuNodes >= 0, cores.cpuNodes * smallestCPUNodeBytes <= size else { fail("more cpu nodes than the blob holds") }
  var previousEnd: UInt = 0
  for index in 0..<memory.ram.count {
    let range = memory.ram[index]
    guard Page.isAligned(range.start), Page.isAligned(range.end), range.start < range.end, range.start >= previousEnd else {
      fail("a RAM range is not aligned, ordered and disjoint")
    }
    previousEnd = range.end
  }
  guard memory.reservationCount >= 1, memory.reservation(0).owner == .deviceTree else { fail("the blob itself was not reserved") }
  return 0
}

/// The cores `blob` describes, or nil for a blob the reader refuses (with a typed error).
/// A blob whose cores read must give its device ranges too, each non-empty.
private func readCores(_ blob: UnsafeRawBufferPointer) -> DeviceTreeCores? {
  let tree: FlattenedDeviceTree
  let cores: DeviceTreeCores
  do throws(DeviceTreeError) {
    tree = try FlattenedDeviceTree(blob: blob)
    cores = try tree.cores()
  } catch {
    return nil
  }
  do throws(DeviceTreeError) {
    try tree.forEachDeviceRange { start, end in
      if start >= end { fail("an empty or reversed device range") }
    }
  } catch {
    fail("the cores read cleanly but the device ranges did not")
  }
  return cores
}

/// A finding: prints `reason` and aborts, which libFuzzer records with the input.
private func fail(_ reason: StaticString) -> Never {
  print("dtbfuzz: \(reason)")
  abort()
}

#if !FUZZING
@main
struct Replay {
  static func main() { replayFiles("dtbfuzz", CommandLine.arguments.dropFirst(), fuzzOneInput) }
}
#endif
