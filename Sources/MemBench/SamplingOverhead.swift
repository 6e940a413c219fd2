// `make bench ONLY=kfence`: what the sampling detector costs the fast path. Two kernel
// memory objects built alike, one with a GuardedPool attached at the default interval
// (mprotect pages, glibc's backtrace for the stacks, as the preload library), measured
// with their repetitions interleaved in the same run.
import Glibc
import KernelHeap
import KernelMemory

/// glibc's `backtrace` (execinfo.h, which the Glibc module does not export).
@_silgen_name("backtrace")
func glibcBacktrace(_ buffer: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ size: Int32) -> Int32

/// The project's kernel heap with a guarded pool sampling one allocation in `interval`.
struct SampledKernel: BenchAllocator {
  static let name = "project+kfence"
  var kernel: ProjectKernel
  let pool: GuardedPool

  init(interval: Int, slots: Int = GuardedPool.defaultSlots) {
    kernel = ProjectKernel()
    let heap = kernel.heap
    let range = mmap(nil, GuardedPool.rangeBytes(slots: slots), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
    let control = UnsafeMutableRawPointer.allocate(
      byteCount: GuardedPool.controlBytes(slots: slots, cpuSlots: heap.slots), alignment: 64)
    let hooks = GuardedPoolHooks(
      context: nil,
      setAccessible: { _, page, accessible in
        mprotect(UnsafeMutableRawPointer(bitPattern: page), 4096, accessible ? PROT_READ | PROT_WRITE : PROT_NONE) == 0
      },
      captureStack: { _, buffer, capacity in
        buffer.withMemoryRebound(to: UnsafeMutableRawPointer?.self, capacity: capacity) {
          Int(glibcBacktrace($0, Int32(capacity)))
        }
      },
      write: { _, bytes, count in _ = Glibc.write(2, bytes, count) },
      fatal: { _ in abort() })
    pool = GuardedPool(
      base: UInt(bitPattern: range), slots: slots, interval: interval, cpuSlots: heap.slots, control: control, hooks: hooks)!
    heap.attach(pool)
  }

  @inline(__always) mutating func allocate(_ size: Int) -> UnsafeMutableRawPointer? { kernel.allocate(size) }
  @inline(__always) mutating func free(_ pointer: UnsafeMutableRawPointer) { kernel.free(pointer) }
}

/// Medians of `measurement` on the heap without and with the detector, repetitions
/// interleaved, and the pool's sampled count.
func samplingOverhead<M: AllocatorMeasurement>(_ measurement: M, interval: Int, repetitions: Int) -> (off: Double, on: Double, sampled: Int) {
  var off = ProjectKernel()
  var on = SampledKernel(interval: interval)
  var offSamples: [Double] = [], onSamples: [Double] = []
  for repetition in 0..<repetitions {
    // Alternate which goes first, so neither always runs on a warmer machine.
    if repetition % 2 == 0 {
      offSamples.append(measurement.measure(&off))
      onSamples.append(measurement.measure(&on))
    } else {
      onSamples.append(measurement.measure(&on))
      offSamples.append(measurement.measure(&off))
    }
  }
  func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
  return (median(offSamples), median(onSamples), on.pool.statistics.sampled)
}
