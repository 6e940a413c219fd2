// The comparison workloads (lifo, random, scaling, trace) run every allocator in turn
// within each repetition: repetition 1 runs project, glibc, jemalloc, mimalloc and the
// seed list once each, then repetition 2, and so on. A slow spell of the host (this is a
// shared VM) then falls on all of them alike, and every ratio comes from the one run.

/// One repetition's figure of a workload, for any allocator.
protocol AllocatorMeasurement {
  func measure<A: BenchAllocator>(_ allocator: inout A) -> Double
}

/// LIFO alloc+free of one size, ns per pair.
struct LifoMeasurement: AllocatorMeasurement {
  let size: Int
  let iterations: Int
  func measure<A: BenchAllocator>(_ allocator: inout A) -> Double { lifo(&allocator, size: size, iterations: iterations) }
}

/// A talc-style trace replayed, ns per operation.
struct TraceMeasurement: AllocatorMeasurement {
  let trace: Trace
  func measure<A: BenchAllocator>(_ allocator: inout A) -> Double { replay(&allocator, trace) }
}

/// A recorded program's trace replayed, ns per event (NaN when an allocation failed).
struct RecordedTraceMeasurement: AllocatorMeasurement {
  let trace: RecordedTrace
  func measure<A: BenchAllocator>(_ allocator: inout A) -> Double { replay(&allocator, trace) ?? .nan }
}

/// Alloc+free of a size that fits no hole with `holes` free holes present, ns per pair.
struct ScalingMeasurement: AllocatorMeasurement {
  let holes: Int
  let iterations: Int
  func measure<A: BenchAllocator>(_ allocator: inout A) -> Double { scaling(&allocator, holes: holes, iterations: iterations) }
}

/// Runs `measurement` `repetitions` times on each allocator, the allocators taking turns
/// within each repetition (project, glibc, jemalloc, mimalloc, seed list), and gives each
/// allocator's median, in that order.
///
/// - Parameters:
///   - seedList: the seed list's own measurement (the same workload, maybe with fewer
///     iterations) and its arena; nil leaves it out.
///   - including: whether an allocator is measured at all (membench's `--allocator`).
///     jemalloc and mimalloc are left out, too, when their library is not there.
func interleavedMedians<M: AllocatorMeasurement>(
  _ measurement: M, seedList: (measurement: M, arenaBytes: Int)?, repetitions: Int, including: (String) -> Bool
) -> [(allocator: String, value: Double)] {
  var project = ProjectKernel()
  var glibc = GlibcMalloc()
  var jemalloc = MallocLibraries.jemalloc.map(DynamicMalloc.init)
  var mimalloc = MallocLibraries.mimalloc.map(DynamicMalloc.init)
  var seed = seedList.map { SeedBestFitList(bytes: $0.arenaBytes) }
  let names = ["project", "glibc", "jemalloc", "mimalloc", "seed-list"]
  var samples = names.map { _ in [Double]() }
  let measuring = names.map(including)
  for _ in 0..<repetitions {
    if measuring[0] { samples[0].append(measurement.measure(&project)) }
    if measuring[1] { samples[1].append(measurement.measure(&glibc)) }
    if measuring[2], jemalloc != nil { samples[2].append(measurement.measure(&jemalloc!)) }
    if measuring[3], mimalloc != nil { samples[3].append(measurement.measure(&mimalloc!)) }
    if measuring[4], let seedList, seed != nil { samples[4].append(seedList.measurement.measure(&seed!)) }
  }
  return zip(names, samples).compactMap { name, values in values.isEmpty ? nil : (name, median(values)) }
}
