// `make bench` threads mode: the per-CPU caches' scaling on the host. N threads (1 up
// to the host's cores) run the same loop at once on one machine; each thread's cost
// per pair is the wall time over its pairs. Flat per-thread cost = the CPUs do not
// contend (each allocates and frees on its own cache under its own lock).
import KernelMemory
import Glibc
import KernelHeap
import KernelSyncAtomics
import PageFrames

/// What a benchmark thread runs: `iterations` pairs of one kind.
struct ThreadLoad {
  enum Kind: String {
    /// order-0 allocPages + freePages on the project's machine.
    case order0
    /// 64-byte kmalloc + kfree on the project's machine.
    case kmalloc64
    /// glibc posix_memalign(16, 64) + free (as the other workloads call glibc): the
    /// machine's own reference. Its per-thread cache shares nothing between threads,
    /// so its 2-thread/1-thread ratio is what this host gives a loop that shares no
    /// memory.
    case glibc64 = "glibc-malloc64"
  }

  let frames: PageFrameAllocator
  let heap: Heap
  let iterations: Int
  let kind: Kind

  func run() {
    switch kind {
    case .order0:
      for _ in 0..<iterations {
        guard let page = frames.allocPages(order: 0, zeroed: false) else { continue }
        try? frames.freePages(page, order: 0)
      }
    case .kmalloc64:
      for _ in 0..<iterations {
        guard let object = heap.allocate(64) else { continue }
        try? heap.deallocate(object)
      }
    case .glibc64:
      var glibc = GlibcMalloc()
      for _ in 0..<iterations {
        guard let object = glibc.allocate(64) else { continue }
        glibc.free(object)
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
