import Foundation
import KernelSync
import Testing

/// The ticket lock and its IRQ-saving variant, with real threads standing in for CPUs.
@Suite struct LockTests {
  /// A counter incremented without atomics under the lock by 4 threads reaches exactly
  /// 4 × 200,000: no increment is lost, so no two threads were inside at once.
  @Test("mutual exclusion under contention: a plain counter reaches exactly N")
  func mutualExclusion() async {
    let words = UnsafeMutablePointer<TicketLockWords>.allocate(capacity: 1)
    words.initialize(to: TicketLockWords())
    let counter = UnsafeMutablePointer<Int>.allocate(capacity: 1)
    counter.initialize(to: 0)
    defer { words.deallocate(); counter.deallocate() }
    let lock = TicketLock(words)
    let threads = 4, increments = 200_000
    let counterAddress = Int(bitPattern: counter)
    await withTaskGroup(of: Void.self) { group in
      for cpu in 0..<threads {
        group.addTask {
          let counter = UnsafeMutablePointer<Int>(bitPattern: counterAddress)!
          for _ in 0..<increments {
            lock.lock(cpu: cpu)
            // Read, yield now and then, write: a lost update shows as a short count.
            let value = counter.pointee
            if value % 1024 == 0 { sched_yield() }
            counter.pointee = value + 1
            lock.unlock(cpu: cpu)
          }
        }
      }
    }
    #expect(counter.pointee == threads * increments)
    #expect(lock.holder == nil)
  }

  @Test("a recursive acquire and an unlock by another CPU are refused, the lock unchanged")
  func debugChecks() {
    let words = UnsafeMutablePointer<TicketLockWords>.allocate(capacity: 1)
    words.initialize(to: TicketLockWords())
    defer { words.deallocate() }
    let lock = TicketLock(words)
    #expect(lock.unlock(cpu: 0) == .notOwner(cpu: 0, owner: nil))
    #expect(lock.lock(cpu: 2) == nil)
    #expect(lock.holder == 2)
    #expect(lock.lock(cpu: 2) == .recursiveAcquire(cpu: 2))
    #expect(lock.unlock(cpu: 3) == .notOwner(cpu: 3, owner: 2))
    #expect(!lock.tryLock(cpu: 3))
    #expect(lock.holder == 2)
    #expect(lock.unlock(cpu: 2) == nil)
    #expect(lock.holder == nil && lock.tryLock(cpu: 3) && lock.holder == 3)
    #expect(lock.unlock(cpu: 3) == nil)
  }

  /// The same exclusion test for the test-and-set lock, with real threads (each its own
  /// CPU number) and a barrier before and after.
  @Test("SpinLock: a plain counter incremented by 4 threads reaches exactly N; the barrier holds them together")
  func spinLockExclusion() {
    let word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
    word.initialize(to: 0)
    let barrierWords = UnsafeMutablePointer<SpinBarrierWords>.allocate(capacity: 1)
    barrierWords.initialize(to: SpinBarrierWords())
    let counter = UnsafeMutablePointer<Int>.allocate(capacity: 2)
    counter.initialize(repeating: 0, count: 2)
    defer { word.deallocate(); barrierWords.deallocate(); counter.deallocate() }
    let lock = SpinLock(word), threads = 4, increments = 100_000
    let barrier = SpinBarrier(barrierWords, parties: threads)
    let done = DispatchGroup()
    for _ in 0..<threads {
      done.enter()
      Thread.detachNewThread {
        let cpu = CPU.current
        barrier.wait()
        for _ in 0..<increments {
          lock.lock(cpu: cpu)
          let value = counter.pointee
          if value % 1024 == 0 { sched_yield() }
          counter.pointee = value + 1
          lock.unlock(cpu: cpu)
        }
        barrier.wait()
        // Everyone is past the loop here: the total is final for every thread.
        lock.lock(cpu: cpu)
        if counter.pointee == threads * increments { counter[1] += 1 }
        lock.unlock(cpu: cpu)
        done.leave()
      }
    }
    done.wait()
    #expect(counter.pointee == threads * increments)
    #expect(counter[1] == threads)
    #expect(lock.holder == nil)
  }

  @Test("SpinLock: a recursive acquire and an unlock by another CPU are refused, the lock unchanged")
  func spinLockChecks() {
    let word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
    word.initialize(to: 0)
    defer { word.deallocate() }
    let lock = SpinLock(word)
    #expect(lock.unlock(cpu: 0) == .notOwner(cpu: 0, owner: nil))
    #expect(lock.lock(cpu: 5) == nil)
    #expect(lock.holder == 5)
    #expect(lock.lock(cpu: 5) == .recursiveAcquire(cpu: 5))
    #expect(lock.unlock(cpu: 1) == .notOwner(cpu: 1, owner: 5))
    #expect(lock.holder == 5)
    #expect(lock.unlock(cpu: 5) == nil)
    #expect(lock.holder == nil && word.pointee == 0)
  }

  /// A mask recorder standing in for DAIF: a stack of masks per test.
  enum RecordingMask: InterruptMasking {
    nonisolated(unsafe) static var current: UInt = 0
    static func save() -> UInt {
      let saved = current
      current = 0xF  // all masked
      return saved
    }
    static func restore(_ saved: UInt) { current = saved }
  }

  @Test("the IRQ-saving lock masks while held and restores each nesting level's mask")
  func interruptMaskSaveAndRestore() {
    let words = UnsafeMutablePointer<TicketLockWords>.allocate(capacity: 2)
    words.initialize(repeating: TicketLockWords(), count: 2)
    defer { words.deallocate() }
    let outer = IRQSavingLock<RecordingMask>(words), inner = IRQSavingLock<RecordingMask>(words + 1)
    RecordingMask.current = 0x3  // some interrupts masked already
    let outerSaved = try? outer.lock(cpu: 0).get()
    #expect(outerSaved == 0x3 && RecordingMask.current == 0xF)
    let innerSaved = try? inner.lock(cpu: 0).get()
    #expect(innerSaved == 0xF && RecordingMask.current == 0xF)
    // A recursive acquire of the outer lock: refused, the mask as it was.
    if case .failure(let error) = outer.lock(cpu: 0) { #expect(error == .recursiveAcquire(cpu: 0)) } else { Issue.record("accepted") }
    #expect(RecordingMask.current == 0xF)
    #expect(inner.unlock(cpu: 0, restoring: innerSaved!) == nil && RecordingMask.current == 0xF)
    #expect(outer.unlock(cpu: 1, restoring: outerSaved!) == .notOwner(cpu: 1, owner: 0) && RecordingMask.current == 0xF)
    #expect(outer.unlock(cpu: 0, restoring: outerSaved!) == nil && RecordingMask.current == 0x3)
  }
}
