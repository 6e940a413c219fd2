import Foundation
import Scenarios
import Testing

/// The scenarios the test kernel also runs under QEMU, run here on the host, in
/// parallel: every scenario builds its own allocators over its own memory.
struct SharedScenarioTests {
  static let names: [String] = allScenarios().map { "\($0.name)" }

  @Test("shared scenario", arguments: SharedScenarioTests.names)
  func scenario(_ name: String) {
    let scenario = allScenarios().first { "\($0.name)" == name }!
    let ram = SimulatedRAM(bytes: scenario.memoryBytes)
    var expectations = Expectations()
    scenario.run(ram.scenarioMemory(seed: 42), &expectations)
    #expect(expectations.checks > 0, "\(name) checked nothing")
    #expect(expectations.passed, "\(name): \(expectations.firstFailure) (value \(expectations.firstValue)), \(expectations.failures) failures")
  }

  /// Seeds of the model test: 100, or `KMEM_MODEL_SEEDS` when set (`make asan-test`
  /// runs 10: under AddressSanitizer one seed takes ~16 s, and `make fuzz` runs the
  /// model under AddressSanitizer as well).
  static let modelSeeds = 1...max(1, ProcessInfo.processInfo.environment["KMEM_MODEL_SEEDS"].flatMap { Int($0) } ?? 100)

  /// 100 seeds x 10,000 operations = 1,000,000 model operations, each followed by
  /// heapCheck and the page accounting identity.
  @Test("model-based random operations, one test case per seed", arguments: modelSeeds)
  func model(seed: Int) {
    let ram = SimulatedRAM(bytes: ScenarioMemory.standardBytes)
    var expectations = Expectations()
    runModel(ram.scenarioMemory(), seed: UInt64(seed), operations: modelOperationsPerSeed, &expectations)
    #expect(expectations.passed, "replay with seed \(seed): \(expectations.firstFailure)")
  }
}
