// The test kernel's semihosting command line, checked word by word: a word it does not
// know, or a value out of range, stops the boot with the list of valid words and exit
// status 2 instead of being ignored or read as the default.
#if os(none)
import Arch

/// The deliberate faults `fault=` may name.
enum DeliberateFault {
  case dataAbort, undefined, brk, stackCanary, stackOverflow, bootStackOverflow, writeText, executeHeap, vmallocGuard
}

/// Operations per core the `smp` case accepts with `ops=N`: below the minimum too few
/// frees happen for the stress's cross-core share (a quarter) to mean anything; above
/// the maximum the run outlasts the harness's time limit.
let smpOperationsRange = 1_000...10_000_000

/// Exit status of a boot refused for its arguments.
let badArgumentsExitStatus: Int32 = 2

/// The valid words, printed with every refusal.
let validArguments: StaticString =
  "quick, scribble, text=HEX (end of .rodata, with scribble), smp, seed=N and ops=N (1000 to 10000000; with smp), vm-rounds=N (10 to 2000; with smp), bench, fault=data-abort|undefined|brk|stack-canary|stack-overflow|boot-stack-overflow|write-text|exec-heap|vmalloc-guard|kfence-BUG (with kfence=N; BUG: see KfenceFaults.swift), kfence=N, fail-on-purpose"

/// What the command line asks for. The first word is the program's name (QEMU's
/// `arg=testkernel`) and is not checked.
struct TestArguments {
  var quick = false
  var scribble = false
  /// `text=HEX`: the end of the kernel's .text and .rodata, which `scribble` hashes.
  var textEnd: UInt? = nil
  var smp = false
  var seed: UInt64? = nil
  var operations: Int? = nil
  /// `vm-rounds=N`: the kernel map stress's private rounds per core.
  var vmRounds: Int? = nil
  var bench = false
  var fault: DeliberateFault? = nil
  /// `fault=kfence-...`: a planted memory bug for the sampling detector (KfenceFaults.swift).
  var plantedBug: PlantedBug? = nil
  /// `kfence=N`: sample one allocation in N (0: off); nil leaves it to /chosen/bootargs.
  var kfence: Int? = nil
  var failOnPurpose = false
  /// The first bad word (offset and length in the command line) and why, or nil.
  var problem: (start: Int, length: Int, reason: StaticString)? = nil

  /// Reads the first `length` bytes of `line`.
  /// - Complexity: O(length × words known).
  init(_ line: UnsafeRawBufferPointer, _ length: Int) {
    var cursor = 0
    var first = true
    while cursor < length {
      while cursor < length && line[cursor] == 32 { cursor += 1 }
      let start = cursor
      while cursor < length && line[cursor] != 32 { cursor += 1 }
      guard cursor > start else { break }
      let word = UnsafeRawBufferPointer(rebasing: line[start..<cursor])
      if first {
        first = false
        continue
      }
      if let reason = take(word) {
        if problem == nil { problem = (start, cursor - start, reason) }
      }
    }
    if problem == nil && (seed != nil || operations != nil || vmRounds != nil) && !smp {
      problem = (0, 0, "seed=, ops= and vm-rounds= apply only with smp")
    }
    let modes = (smp ? 1 : 0) + (bench ? 1 : 0) + (fault != nil ? 1 : 0) + (plantedBug != nil ? 1 : 0)
    if problem == nil && modes > 1 {
      problem = (0, 0, "smp, bench and fault= exclude one another")
    }
    if problem == nil && plantedBug != nil && (kfence ?? 0) == 0 {
      problem = (0, 0, "fault=kfence-... needs kfence=N (N >= 1)")
    }
    if problem == nil && textEnd != nil && !scribble {
      problem = (0, 0, "text= applies only with scribble")
    }
  }

  /// `value` as a decimal number inside `range`, or nil.
  private func decimal(_ value: UnsafeRawBufferPointer, in range: ClosedRange<Int>) -> Int? {
    guard let number = parseNumber(value, radix: 10), number <= UInt64(range.upperBound), range.contains(Int(number)) else {
      return nil
    }
    return Int(number)
  }

  /// Records one word; the reason it is refused, or nil.
  private mutating func take(_ word: UnsafeRawBufferPointer) -> StaticString? {
    if equals(word, "quick") { quick = true; return nil }
    if equals(word, "scribble") { scribble = true; return nil }
    if equals(word, "smp") { smp = true; return nil }
    if equals(word, "bench") { bench = true; return nil }
    if equals(word, "fail-on-purpose") { failOnPurpose = true; return nil }
    if equals(word, "fault=data-abort") { fault = .dataAbort; return nil }
    if equals(word, "fault=undefined") { fault = .undefined; return nil }
    if equals(word, "fault=brk") { fault = .brk; return nil }
    if equals(word, "fault=stack-canary") { fault = .stackCanary; return nil }
    if equals(word, "fault=stack-overflow") { fault = .stackOverflow; return nil }
    if equals(word, "fault=boot-stack-overflow") { fault = .bootStackOverflow; return nil }
    if equals(word, "fault=write-text") { fault = .writeText; return nil }
    if equals(word, "fault=exec-heap") { fault = .executeHeap; return nil }
    if equals(word, "fault=vmalloc-guard") { fault = .vmallocGuard; return nil }
    if let value = value(of: word, after: "seed=") {
      guard let number = parseNumber(value, radix: 10) else { return "seed= needs a decimal number below 2^64" }
      seed = number
      return nil
    }
    if let value = value(of: word, after: "ops=") {
      guard let number = decimal(value, in: smpOperationsRange) else { return "ops= needs a decimal number from 1000 to 10000000" }
      operations = number
      return nil
    }
    if let value = value(of: word, after: "vm-rounds=") {
      guard let number = decimal(value, in: vmPrivateRoundsRange) else { return "vm-rounds= needs a decimal number from 10 to 2000" }
      vmRounds = number
      return nil
    }
    if let value = value(of: word, after: "text=") {
      var digits = value
      if digits.count > 2 && digits[0] == 48 && (digits[1] == 120 || digits[1] == 88) {
        digits = UnsafeRawBufferPointer(rebasing: digits[2...])
      }
      guard let number = parseNumber(digits, radix: 16), number > 0 else { return "text= needs a hexadecimal address" }
      textEnd = UInt(number)
      return nil
    }
    if let value = value(of: word, after: "fault=kfence-") {
      guard let bug = PlantedBug(value) else { return "unknown fault" }
      plantedBug = bug
      return nil
    }
    if let value = value(of: word, after: "kfence=") {
      guard let number = parseNumber(value, radix: 10), number <= 1_000_000_000 else {
        return "kfence= needs a decimal number up to 1000000000"
      }
      kfence = Int(number)
      return nil
    }
    if value(of: word, after: "fault=") != nil { return "unknown fault" }
    return "unknown argument"
  }
}

/// Whether `word` is exactly `text`.
func equals(_ word: UnsafeRawBufferPointer, _ text: StaticString) -> Bool {
  guard word.count == text.utf8CodeUnitCount else { return false }
  for i in 0..<word.count where word[i] != text.utf8Start[i] { return false }
  return true
}

/// The bytes after `key` when `word` starts with it, or nil.
func value(of word: UnsafeRawBufferPointer, after key: StaticString) -> UnsafeRawBufferPointer? {
  let count = key.utf8CodeUnitCount
  guard word.count >= count else { return nil }
  for i in 0..<count where word[i] != key.utf8Start[i] { return nil }
  return UnsafeRawBufferPointer(rebasing: word[count...])
}

/// `digits` as a number in `radix` (10 or 16), or nil when empty, when a byte is not a
/// digit (a sign included) or when it does not fit in 64 bits.
func parseNumber(_ digits: UnsafeRawBufferPointer, radix: UInt64) -> UInt64? {
  guard digits.count > 0 else { return nil }
  var value: UInt64 = 0
  for byte in digits {
    let digit: UInt64
    switch byte {
    case 48...57: digit = UInt64(byte - 48)
    case 97...102 where radix == 16: digit = UInt64(byte - 87)
    case 65...70 where radix == 16: digit = UInt64(byte - 55)
    default: return nil
    }
    let (times, overflow1) = value.multipliedReportingOverflow(by: radix)
    let (sum, overflow2) = times.addingReportingOverflow(digit)
    guard !overflow1, !overflow2 else { return nil }
    value = sum
  }
  return value
}

/// Prints the refusal (the word, why, the valid words) and exits with status 2.
func refuseArguments(_ line: UnsafeRawBufferPointer, _ arguments: TestArguments) -> Never {
  let problem = arguments.problem!
  kput("test kernel: bad arguments: ")
  kput(problem.reason)
  if problem.length > 0, let base = line.baseAddress {
    kput(" '")
    kput(bytes: UnsafeBufferPointer(start: base.assumingMemoryBound(to: UInt8.self) + problem.start, count: problem.length))
    kput("'")
  }
  kput("\ntest kernel: valid arguments: ")
  kput(validArguments)
  kput("\n")
  Machine.exit(badArgumentsExitStatus)
}

#endif
