// `make bench` threads mode: the per-CPU caches' scaling on the host. N threads (1 up
// to the host's cores) run the same loop at once on one machine; each thread's cost
// per pair is the wall time over its pairs. Flat per-thread cost = the CPUs do not
// contend (each allocates and frees on its own cache under its own lock).
import Glibc
import KernelHeap
import KernelSyncAtomics
import PageFrames

/// What a benchmark thread runs: `iterations` pairs of one kind on one machine.
struct ThreadLoad {
  let frames: PageFrameAllocator
  let heap: Heap
  let iterations: Int
  /// Pages (order-0 allocPages + freePages) or 64-byte kmalloc + kfree.
  let pages: Bool

  func run() {
    if pages {
      for _ in 0..<iterations {
        guard let page = frames.allocPages(order: 0, zeroed: false) else { continue }
        try? frames.freePages(page, order: 0)
      }
    } else {
      for _ in 0..<iterations {
        guard let object = heap.allocate(64) else { continue }
        try? heap.deallocate(object)
      }
    }
  }
}

/// ns per pair per thread with `threads` threads running `load` together: the wall
/// time from the start signal until the last thread ends, over each thread's pairs.
func threadedPairs(_ load: ThreadLoad, threads: Int) -> Double {
  final class Box {
    let load: ThreadLoad
    let go = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
    init(_ load: ThreadLoad) { self.load = load; go.initialize(to: 0) }
    deinit { go.deallocate() }
  }
  let box = Box(load)
  let context = Unmanaged.passRetained(box).toOpaque()
  var handles: [pthread_t] = []
  for _ in 0..<threads {
    var handle = pthread_t()
    pthread_create(&handle, nil, { raw in
      let box = Unmanaged<Box>.fromOpaque(raw!).takeUnretainedValue()
      // Spin on a start flag so every thread starts timing-relevant work together.
      while ks_load_acquire(box.go) == 0 { sched_yield() }
      box.load.run()
      return nil
    }, context)
    handles.append(handle)
  }
  let start = now()
  ks_store_release(box.go, 1)
  for handle in handles { pthread_join(handle, nil) }
  let elapsed = now() - start
  Unmanaged<Box>.fromOpaque(context).release()
  return Double(elapsed) / Double(load.iterations)
}

/// The host's online cores, at least 1.
func hostCores() -> Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
