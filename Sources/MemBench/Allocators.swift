import KernelMemory
import Glibc
import KernelHeap
import MemInit
import PageFrames

/// What a benchmark needs of an allocator.
protocol BenchAllocator {
  static var name: String { get }
  mutating func allocate(_ size: Int) -> UnsafeMutableRawPointer?
  mutating func free(_ pointer: UnsafeMutableRawPointer)
  /// `size` bytes at a multiple of `alignment`; the default serves up to 16 only.
  mutating func allocate(_ size: Int, alignment: Int) -> UnsafeMutableRawPointer?
  /// Resizes; the default allocates, copies and frees.
  mutating func reallocate(_ pointer: UnsafeMutableRawPointer, from old: Int, to size: Int) -> UnsafeMutableRawPointer?
}

extension BenchAllocator {
  mutating func allocate(_ size: Int, alignment: Int) -> UnsafeMutableRawPointer? {
    alignment <= 16 ? allocate(size) : nil
  }
  mutating func reallocate(_ pointer: UnsafeMutableRawPointer, from old: Int, to size: Int) -> UnsafeMutableRawPointer? {
    guard let moved = allocate(size) else { return nil }
    moved.copyMemory(from: pointer, byteCount: min(old, size))
    free(pointer)
    return moved
  }
}

let benchZeroFill: ZeroFill = { pointer, count in _ = memset(pointer!, 0, count) }

/// A 16-byte aligned arena from the C heap, released on deinit.
final class Arena {
  let base: UnsafeMutableRawPointer
  let bytes: Int
  init(bytes: Int) {
    var pointer: UnsafeMutableRawPointer?
    precondition(posix_memalign(&pointer, 4096, bytes) == 0)
    base = pointer!
    self.bytes = bytes
    memset(base, 0, bytes)
  }
  deinit { Glibc.free(base) }
}

/// This project's heap over a fixed arena (no page frames, so no slabs and no growth):
/// the TLSF allocator alone, for the efficiency figure.
struct ProjectHeap: BenchAllocator {
  static let name = "project"
  let arena: Arena
  let heap: Heap
  init(bytes: Int) {
    arena = Arena(bytes: bytes)
    heap = Heap(start: arena.base, size: bytes, zeroFill: benchZeroFill)!
  }
  @inline(__always) mutating func allocate(_ size: Int) -> UnsafeMutableRawPointer? { heap.allocate(size) }
  @inline(__always) mutating func free(_ pointer: UnsafeMutableRawPointer) { try? heap.deallocate(pointer) }
}

/// The kernel's memory object as memInit builds it over a simulated machine: kmalloc
/// and kfree with the slab caches, the TLSF heap, growth and large runs, every check on.
struct ProjectKernel: BenchAllocator {
  static let name = "project"
  let machine: SimulatedMachine
  let heap: Heap
  init(machineBytes: Int = 1 << 30) {
    machine = SimulatedMachine(bytes: machineBytes)
    let memory = try! KernelMemory(machine.config, layout: try! planLayout(machine.config))
    heap = memory.heap!
  }
  @inline(__always) mutating func allocate(_ size: Int) -> UnsafeMutableRawPointer? { heap.allocate(size) }
  @inline(__always) mutating func free(_ pointer: UnsafeMutableRawPointer) { try? heap.deallocate(pointer) }
  mutating func allocate(_ size: Int, alignment: Int) -> UnsafeMutableRawPointer? { heap.allocate(size, alignment: alignment) }
  mutating func reallocate(_ pointer: UnsafeMutableRawPointer, from old: Int, to size: Int) -> UnsafeMutableRawPointer? {
    (try? heap.reallocate(pointer, to: size)) ?? nil
  }
}

/// glibc's posix_memalign(16) and free.
struct GlibcMalloc: BenchAllocator {
  static let name = "glibc"
  @inline(__always) mutating func allocate(_ size: Int) -> UnsafeMutableRawPointer? {
    var pointer: UnsafeMutableRawPointer?
    return posix_memalign(&pointer, 16, size) == 0 ? pointer : nil
  }
  @inline(__always) mutating func free(_ pointer: UnsafeMutableRawPointer) { Glibc.free(pointer) }
  mutating func allocate(_ size: Int, alignment: Int) -> UnsafeMutableRawPointer? {
    var pointer: UnsafeMutableRawPointer?
    return posix_memalign(&pointer, max(alignment, 16), size) == 0 ? pointer : nil
  }
  mutating func reallocate(_ pointer: UnsafeMutableRawPointer, from old: Int, to size: Int) -> UnsafeMutableRawPointer? {
    Glibc.realloc(pointer, size)
  }
}

/// The seed's heap, as the Go port and the tutorial build it: an address-ordered doubly
/// linked list of every segment behind a 24-byte header {next, prev, isAllocated,
/// segmentSize}; kmalloc walks every segment for the best fit, splits when more than
/// two headers are left over, and kfree coalesces both ways.
struct SeedBestFitList: BenchAllocator {
  static let name = "seed-list"
  static let header = 24
  let arena: Arena
  let head: UnsafeMutableRawPointer

  init(bytes: Int) {
    arena = Arena(bytes: bytes)
    head = arena.base
    SeedBestFitList.set(head, next: nil, prev: nil, allocated: false, size: bytes)
  }

  static func next(_ s: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? { s.load(as: UnsafeMutableRawPointer?.self) }
  static func prev(_ s: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? { s.load(fromByteOffset: 8, as: UnsafeMutableRawPointer?.self) }
  static func allocated(_ s: UnsafeMutableRawPointer) -> Bool { s.load(fromByteOffset: 16, as: UInt32.self) != 0 }
  static func size(_ s: UnsafeMutableRawPointer) -> Int { Int(s.load(fromByteOffset: 20, as: UInt32.self)) }
  static func set(_ s: UnsafeMutableRawPointer, next: UnsafeMutableRawPointer?, prev: UnsafeMutableRawPointer?, allocated: Bool, size: Int) {
    s.storeBytes(of: next, as: UnsafeMutableRawPointer?.self)
    s.storeBytes(of: prev, toByteOffset: 8, as: UnsafeMutableRawPointer?.self)
    s.storeBytes(of: allocated ? 1 : 0, toByteOffset: 16, as: UInt32.self)
    s.storeBytes(of: UInt32(size), toByteOffset: 20, as: UInt32.self)
  }

  mutating func allocate(_ request: Int) -> UnsafeMutableRawPointer? {
    // The seed rounds the request to 16 and adds the header (we do it without wrapping).
    let need = (request + 15) & ~15 + SeedBestFitList.header
    var best: UnsafeMutableRawPointer? = nil
    var bestDiff = Int.max
    var current: UnsafeMutableRawPointer? = head
    while let s = current {
      let diff = SeedBestFitList.size(s) - need
      if !SeedBestFitList.allocated(s) && diff >= 0 && diff < bestDiff {
        best = s
        bestDiff = diff
      }
      current = SeedBestFitList.next(s)
    }
    guard let s = best else { return nil }
    if bestDiff > 2 * SeedBestFitList.header {
      let rest = s + need
      let next = SeedBestFitList.next(s)
      SeedBestFitList.set(rest, next: next, prev: s, allocated: false, size: bestDiff)
      if let next { next.storeBytes(of: rest, toByteOffset: 8, as: UnsafeMutableRawPointer?.self) }
      SeedBestFitList.set(s, next: rest, prev: SeedBestFitList.prev(s), allocated: true, size: need)
    } else {
      s.storeBytes(of: 1, toByteOffset: 16, as: UInt32.self)
    }
    return s + SeedBestFitList.header
  }

  mutating func free(_ pointer: UnsafeMutableRawPointer) {
    var s = pointer - SeedBestFitList.header
    s.storeBytes(of: 0, toByteOffset: 16, as: UInt32.self)
    if let prev = SeedBestFitList.prev(s), !SeedBestFitList.allocated(prev) {
      merge(prev, s)
      s = prev
    }
    if let next = SeedBestFitList.next(s), !SeedBestFitList.allocated(next) {
      merge(s, next)
    }
  }

  private func merge(_ left: UnsafeMutableRawPointer, _ right: UnsafeMutableRawPointer) {
    let next = SeedBestFitList.next(right)
    SeedBestFitList.set(left, next: next, prev: SeedBestFitList.prev(left), allocated: false,
      size: SeedBestFitList.size(left) + SeedBestFitList.size(right))
    if let next { next.storeBytes(of: left, toByteOffset: 8, as: UnsafeMutableRawPointer?.self) }
  }
}
