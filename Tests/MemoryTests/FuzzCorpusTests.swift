import Foundation
import Scenarios
import Testing

/// Every input in the fuzzer's seed corpus (Fuzz/corpus), replayed through the same model
/// run the fuzz target uses, so a saved input keeps being checked by `swift test`.
extension SharedScenarioTests {
  static let corpus = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fuzz/corpus")

  static var inputs: [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: corpus.path)) ?? []).sorted()
  }

  @Test("the seed corpus is there")
  func corpusPresent() {
    #expect(SharedScenarioTests.inputs.count >= 8)
  }

  @Test("fuzz corpus input replays cleanly", arguments: SharedScenarioTests.inputs)
  func replay(_ name: String) throws {
    let data = try Data(contentsOf: SharedScenarioTests.corpus.appendingPathComponent(name))
    let ram = SimulatedRAM(bytes: ScenarioMemory.standardBytes)
    var expectations = Expectations()
    data.withUnsafeBytes { bytes in
      var source = ByteSource(bytes)
      runModel(ram.scenarioMemory(), source: &source, operations: 4096, failureValue: UInt(data.count), &expectations)
    }
    #expect(expectations.checks > 0, "\(name) ran no operation")
    #expect(expectations.passed, "\(name): \(expectations.firstFailure), \(expectations.failures) failures")
  }
}
