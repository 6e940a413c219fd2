// What a plain (not libFuzzer) build of a fuzz target does: run each file named on the
// command line once through the target's entry point. Host only.
import Glibc

/// Reads every file named in `arguments` and hands its bytes to `body` (a fuzz target's
/// `LLVMFuzzerTestOneInput`); exits with status 2 when a file cannot be read.
/// - Complexity: O(total bytes).
public func replayFiles(_ tool: String, _ arguments: ArraySlice<String>, _ body: (UnsafePointer<UInt8>?, Int) -> CInt) {
  var count = 0
  for path in arguments {
    guard let file = fopen(path, "rb") else {
      print("\(tool): cannot open \(path)")
      exit(2)
    }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
      let read = fread(&buffer, 1, buffer.count, file)
      if read == 0 { break }
      bytes += buffer[0..<read]
    }
    fclose(file)
    print("\(tool): \(path)")
    _ = bytes.withUnsafeBufferPointer { body($0.baseAddress, $0.count) }
    count += 1
  }
  print("\(tool): \(count) inputs passed")
}
