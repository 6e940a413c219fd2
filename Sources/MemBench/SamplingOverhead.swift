// `make bench ONLY=kfence`: what the sampling detector costs the fast path. One kernel
// memory object with a GuardedPool attached (mprotect pages, glibc's backtrace for the
// stacks), measured with sampling paused and at the default interval, the repetitions
// alternating in the same run on the same memory.
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

/// Medians of `measurement` on one heap with a pool attached, sampling paused
/// (`setSamplingInterval(0)`: the detector off) and at `interval`, the repetitions
/// alternating in the same run on the same memory, and the pool's sampled count.
func samplingOverhead<M: AllocatorMeasurement>(_ measurement: M, interval: Int, repetitions: Int) -> (off: Double, on: Double, sampled: Int) {
  var heap = SampledKernel(interval: interval)
  var offSamples: [Double] = [], onSamples: [Double] = []
  for repetition in 0..<(2 * repetitions) {
    let on = repetition % 4 == 1 || repetition % 4 == 2
    heap.kernel.heap.setSamplingInterval(on ? interval : 0)
    let value = measurement.measure(&heap)
    if on { onSamples.append(value) } else { offSamples.append(value) }
  }
  func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
  return (median(offSamples), median(onSamples), heap.pool.statistics.sampled)
}

/// ns per kmalloc+kfree pair of `size` bytes with every allocation sampled (interval 1):
/// what one sampled pair costs, guard pages, canaries and stacks included.
func sampledPairNanoseconds(size: Int, pairs: Int) -> Double {
  var heap = SampledKernel(interval: 1)
  return lifo(&heap, size: size, iterations: pairs)
}
