import PageFrames

/// Memory a scenario may use as it likes: `bytes` bytes at `base`, page aligned. On the
/// host it is a buffer; in the test kernel, a run of real pages.
public struct ScenarioMemory {
  public let base: UnsafeMutableRawPointer
  public let bytes: Int
  public let zeroFill: ZeroFill
  /// Random seed for this run (scenarios that draw random numbers use it).
  public let seed: UInt64

  public init(base: UnsafeMutableRawPointer, bytes: Int, zeroFill: ZeroFill, seed: UInt64 = 1) {
    self.base = base
    self.bytes = bytes
    self.zeroFill = zeroFill
    self.seed = seed
  }

  /// Bytes every scenario may assume.
  public static let standardBytes = 4 << 20
  /// Bytes the whole-machine scenarios (growth until exhaustion, large requests) ask for.
  public static let machineBytes = 64 << 20
}

/// The outcome of one scenario: how many checks failed, and the first failure.
public struct Expectations {
  public private(set) var checks = 0
  public private(set) var failures = 0
  public private(set) var firstFailure: StaticString = ""
  public private(set) var firstValue: UInt = 0

  public init() {}

  /// Records one check; `value` is printed with the first failure (an address, a size, a seed).
  public mutating func expect(_ condition: Bool, _ message: StaticString, _ value: UInt = 0) {
    checks += 1
    if !condition {
      if failures == 0 {
        firstFailure = message
        firstValue = value
      }
      failures += 1
    }
  }

  public var passed: Bool { failures == 0 }
}

/// One named test, written once and run both by `swift test` and by the test kernel.
public struct Scenario {
  public let name: StaticString
  /// Bytes of memory the scenario wants (`ScenarioMemory.standardBytes` unless it
  /// simulates a whole machine); scenarios scale their requests to what they get.
  public let memoryBytes: Int
  public let run: (ScenarioMemory, inout Expectations) -> Void

  public init(_ name: StaticString, memoryBytes: Int = ScenarioMemory.standardBytes, _ run: @escaping (ScenarioMemory, inout Expectations) -> Void) {
    self.name = name
    self.memoryBytes = memoryBytes
    self.run = run
  }
}

/// Where a model run draws its choices from: a seeded generator, or a fuzzer's bytes.
public protocol OperationSource {
  /// In 0..<bound (bound > 0).
  mutating func below(_ bound: Int) -> Int
  /// No more choices: the run stops (a generator never runs dry).
  var exhausted: Bool { get }
}

extension OperationSource {
  /// In range.
  public mutating func inRange(_ range: Range<Int>) -> Int { range.lowerBound + below(range.count) }
}

/// A fuzzer's input read as a stream of choices: each choice takes as many bytes as its
/// bound needs (little-endian) and reduces them modulo the bound. Past the end every
/// choice is 0 and `exhausted` is true.
public struct ByteSource: OperationSource {
  let bytes: UnsafeRawBufferPointer
  var offset = 0

  public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

  public var exhausted: Bool { offset >= bytes.count }

  public mutating func below(_ bound: Int) -> Int {
    var value: UInt64 = 0
    var range: UInt64 = 1
    while range < UInt64(bound) && offset < bytes.count {
      value = value << 8 | UInt64(bytes[offset])
      range <<= 8
      offset += 1
    }
    return Int(value % UInt64(bound))
  }
}

/// A small deterministic generator (SplitMix64): same seed, same sequence, on every target.
public struct SplitMix: OperationSource {
  var state: UInt64
  public init(seed: UInt64) { state = seed }

  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// Uniform in 0..<bound (bound > 0).
  public mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

  public var exhausted: Bool { false }
}

/// Whether two static strings hold the same bytes (report reasons, say).
/// - Complexity: O(length).
public func sameText(_ a: StaticString, _ b: StaticString) -> Bool {
  guard a.utf8CodeUnitCount == b.utf8CodeUnitCount else { return false }
  for i in 0..<a.utf8CodeUnitCount where a.utf8Start[i] != b.utf8Start[i] { return false }
  return true
}
