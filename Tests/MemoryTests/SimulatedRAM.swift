import Glibc
import PageFrames
import Scenarios

/// Host memory standing in for RAM: an anonymous mapping, touched only where used, so
/// 4 GiB of "RAM" costs only the pages a test writes.
final class SimulatedRAM {
  let base: UnsafeMutableRawPointer
  let bytes: Int

  init(bytes: Int) {
    self.bytes = bytes
    let mapped = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    precondition(mapped != MAP_FAILED, "mmap of simulated RAM failed")
    base = mapped!
  }

  deinit { munmap(base, bytes) }

  func scenarioMemory(seed: UInt64 = 1) -> ScenarioMemory {
    ScenarioMemory(base: base, bytes: bytes, zeroFill: hostZeroFill, seed: seed)
  }
}

/// memset standing in for the kernel's assembly bzero.
let hostZeroFill: ZeroFill = { pointer, count in
  _ = memset(pointer!, 0, count)
}
