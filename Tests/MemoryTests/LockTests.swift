import Foundation
@testable import KernelSync
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
    let memory = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 16)
    defer { memory.deallocate() }
    let outer = IRQSavingLocked<Int, RecordingMask>(initializing: memory, to: 0)
    let inner = IRQSavingLocked<Int, RecordingMask>(initializing: memory + 32, to: 0)
    RecordingMask.current = 0x3  // some interrupts masked already
    let seen = outer.withLock(cpu: 0) { outerState -> [UInt] in
      outerState += 1
      let masked = RecordingMask.current
      let innerMask = inner.withLock(cpu: 0) { _ in RecordingMask.current }
      // A recursive acquire of the outer lock: refused, nothing runs, the mask as it was.
      let refused = outer.withLock(cpu: 0) { _ in UInt(99) }
      return [masked, innerMask ?? 0, refused ?? 0, RecordingMask.current]
    }
    #expect(seen == [0xF, 0xF, 0, 0xF])
    #expect(RecordingMask.current == 0x3)
    #expect(outer.locked.holder == nil && inner.locked.holder == nil)
  }

  @Test("SpinLocked: state only under the lock; a plain counter in it reaches exactly N; re-entry refused; withLocked and withHeld")
  func spinLocked() {
    let memory = UnsafeMutableRawPointer.allocate(byteCount: 4 * SpinLocked<Int>.byteCount, alignment: 16)
    defer { memory.deallocate() }
    let locks = (0..<4).map { SpinLocked<Int>(initializing: memory + $0 * SpinLocked<Int>.byteCount, to: 0) }
    let threads = 4, increments = 50_000
    let done = DispatchGroup()
    for _ in 0..<threads {
      done.enter()
      Thread.detachNewThread {
        let cpu = CPU.current
        for step in 0..<increments {
          _ = locks[0].withLock(cpu: cpu) { value in
            let seen = value
            if seen % 1024 == 0 { sched_yield() }
            value = seen + 1
          }
          // Now and then all four in order, as the walks take them.
          if step % 1000 == 0 {
            _ = SpinLocked<Int>.withLocked(count: 4, cpu: cpu, { locks[$0] }) {
              for lock in locks.dropFirst() { _ = lock.withHeld(cpu: cpu) { $0 += 1 } }
            }
          }
        }
        done.leave()
      }
    }
    done.wait()
    let cpu = CPU.current
    #expect(locks[0].withLock(cpu: cpu) { $0 } == threads * increments)
    #expect(locks[1].withLock(cpu: cpu) { $0 } == threads * increments / 1000)
    // Re-entry: nil, nothing runs; withHeld only inside.
    let nested = locks[2].withLock(cpu: cpu) { _ in locks[2].withLock(cpu: cpu) { _ in 1 } }
    #expect(nested == .some(nil))
    #expect(locks[2].withHeld(cpu: cpu) { $0 } == nil)
    // A lock in the middle already held: none of the others stays taken.
    let partial = locks[2].withLock(cpu: cpu) { _ in SpinLocked<Int>.withLocked(count: 4, cpu: cpu, { locks[$0] }) { 1 } }
    #expect(partial == .some(nil))
    #expect(locks.allSatisfy { $0.holder == nil })
  }
}
