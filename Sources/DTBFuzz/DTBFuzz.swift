// The libFuzzer target for the device tree reader: each input is a blob handed to
// `DeviceTree(blob:physicalAddress:)` and `describe(into:)`. Any outcome but a value or a
// `MemInitError` (a trap, a read outside the blob, which AddressSanitizer catches) is a
// finding. What a successful read returns is checked too: every RAM range is page
// aligned, sorted and inside the address space, and the blob itself is reserved.
//
// `make fuzz-dtb SECONDS=..` builds it with `--sanitize=fuzzer --sanitize=address` and
// `-DFUZZING`; a plain build replays files: `dtbfuzz FILE...`.
import FuzzReplay
import Glibc
import MemInit
import PageFrames

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  // A copy of exactly `size` bytes, so AddressSanitizer sees any read past the blob.
  let copy = UnsafeMutableRawPointer.allocate(byteCount: max(size, 1), alignment: 8)
  defer { copy.deallocate() }
  if let data, size > 0 { copy.copyMemory(from: data, byteCount: size) }
  var memory = BootMemory()
  do throws(MemInitError) {
    let tree = try DeviceTree(blob: UnsafeRawBufferPointer(start: copy, count: size), physicalAddress: 0x4000_0000)
    _ = try tree.describe(into: &memory)
  } catch {
    return 0
  }
  var previousEnd: UInt = 0
  for index in 0..<memory.ram.count {
    let range = memory.ram[index]
    guard Page.isAligned(range.start), Page.isAligned(range.end), range.start < range.end, range.start >= previousEnd else {
      print("dtbfuzz: RAM range \(index) is not aligned, ordered and disjoint")
      abort()
    }
    previousEnd = range.end
  }
  guard memory.reservationCount >= 1, memory.reservation(0).owner == .deviceTree else {
    print("dtbfuzz: the blob itself was not reserved")
    abort()
  }
  return 0
}

#if !FUZZING
@main
struct Replay {
  static func main() { replayFiles("dtbfuzz", CommandLine.arguments.dropFirst(), fuzzOneInput) }
}
#endif
