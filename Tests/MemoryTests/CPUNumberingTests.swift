import KernelSync
import KernelSyncAtomics
import Testing

/// The thread's own number, as a kernel's numbering function: other tests' threads keep
/// theirs while a test installs it.
private let threadNumber: @convention(c) () -> UInt32 = { UInt32(ks_thread_cpu()) }

/// How the package learns the calling CPU: what `CPU.install` accepts and refuses, and
/// that a number out of range is caught. Installs a numbering every thread sees, so it
/// installs only ones that give every other thread the number it had.
@Suite(.serialized)
struct CPUNumberingTests {
  @Test("install refuses a count of 0, above the limit, and the per-CPU register on a host")
  func installRefusals() {
    #expect(CPU.numbering.map { if case .threads = $0 { true } else { false } } == true)
    #expect(!CPU.install(.function(threadNumber), count: 0))
    #expect(!CPU.install(.function(threadNumber), count: -1))
    #expect(!CPU.install(.function(threadNumber), count: CPU.countLimit + 1))
    #expect(!CPU.install(.perCPURegister, count: 4))
    // Nothing changed: still thread numbers, with the hosted limit.
    #expect(CPU.count == CPU.countLimit)
    #expect(CPU.current == Int(ks_thread_cpu()))
  }

  @Test("a kernel's function gives the number; one at or above count is read as count")
  func functionNumbering() {
    let count = 1 << 20   // above every test thread's number
    let mine = Int(ks_thread_cpu())
    defer {
      CPU.bind(mine)
      #expect(CPU.install(.threads, count: 1))
      #expect(CPU.current == mine)
    }
    #expect(CPU.install(.function(threadNumber), count: count))
    #expect(CPU.count == count)
    #expect(CPU.numbering.map { if case .function = $0 { true } else { false } } == true)
    #expect(CPU.current == mine)
    for wrong in [count, count + 5, Int(UInt32.max)] {
      CPU.bind(wrong)
      #expect(CPU.current == count, "a wrong number is caught, never trusted")
    }
    CPU.bind(count - 1)
    #expect(CPU.current == count - 1)
  }
}
