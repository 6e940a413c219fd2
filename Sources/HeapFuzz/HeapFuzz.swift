// The libFuzzer target: each input is a stream of choices for the shared model run
// (heap and page operations, bad frees included, checked after every step).
//
// `make fuzz SECONDS=..` builds it with `--sanitize=fuzzer --sanitize=address` and
// `-DFUZZING`, where libFuzzer supplies `main`. A plain build is a replayer:
// `heapfuzz FILE...` runs each input once and says which one fails.
import FuzzReplay
import Glibc
import PageFrames
import Scenarios

/// Operations per input at most (an input usually runs dry first).
let operationsPerInput = 4096

/// 4 MiB of page-aligned host memory, reused by every input.
let fuzzMemory: ScenarioMemory = {
  var base: UnsafeMutableRawPointer?
  precondition(posix_memalign(&base, Page.size, ScenarioMemory.standardBytes) == 0, "heapfuzz: no memory")
  return ScenarioMemory(base: base!, bytes: ScenarioMemory.standardBytes, zeroFill: { pointer, count in
    _ = memset(pointer!, 0, count)
  })
}()

/// Runs one input; a failed check prints the check and aborts, which libFuzzer reports
/// as a crash and saves the input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  var source = ByteSource(UnsafeRawBufferPointer(start: data, count: size))
  var expectations = Expectations()
  runModel(fuzzMemory, source: &source, operations: operationsPerInput, failureValue: UInt(size), &expectations)
  if !expectations.passed {
    print("heapfuzz: \(expectations.firstFailure) (\(expectations.failures) failed checks, input of \(size) bytes)")
    abort()
  }
  return 0
}

#if !FUZZING
@main
struct Replay {
  static func main() { replayFiles("heapfuzz", CommandLine.arguments.dropFirst(), fuzzOneInput) }
}
#endif
