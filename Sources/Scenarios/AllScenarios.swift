/// Every shared scenario, in the order the test kernel runs them.
public func allScenarios() -> [Scenario] {
  heapScenarios() + pageScenarios() + packedRunScenarios() + memInitScenarios() + kernelMemoryScenarios() + slabScenarios() + modelScenarios()
}
