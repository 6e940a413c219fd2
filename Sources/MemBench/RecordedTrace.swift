import KernelMemory
import Glibc

/// A real program's allocations, recorded by the preload library (`KMALLOC_TRACE`, then
/// `scripts/kmalloc_trace.py`) and committed xz-compressed under `bench/traces/`. The
/// format is in that script: one event a line, `a id size` (malloc), `z id size`
/// (calloc), `m id size align`, `r id size` (realloc), `f id` (free), with ids 0 ..< K
/// reused after a free.
struct RecordedTrace {
  enum Kind: UInt8 { case malloc, calloc, aligned, realloc, free }
  struct Event {
    var kind: Kind
    var id: Int32
    var size: Int
    var alignment: Int
  }
  var events: [Event] = []
  var ids = 0
  var name: String

  /// Reads `path` through `xz -dc`; nil when it cannot be read.
  init?(path: String, name: String) {
    self.name = name
    guard let pipe = popen("xz -dc '\(path)' 2>/dev/null", "r") else { return nil }
    defer { pclose(pipe) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), pipe) != nil {
      guard line[0] != CChar(UInt8(ascii: "#")) else { continue }
      var fields: [Int] = []
      var value = 0, digits = 0
      var index = 2
      while line[index] != 0 {
        let c = UInt8(bitPattern: line[index])
        if c >= 48 && c <= 57 {
          value = value * 10 + Int(c - 48)
          digits += 1
        } else if digits > 0 {
          fields.append(value)
          value = 0
          digits = 0
        }
        index += 1
      }
      if digits > 0 { fields.append(value) }
      guard let id = fields.first else { continue }
      let kind: Kind
      switch UInt8(bitPattern: line[0]) {
      case UInt8(ascii: "a"): kind = .malloc
      case UInt8(ascii: "z"): kind = .calloc
      case UInt8(ascii: "m"): kind = .aligned
      case UInt8(ascii: "r"): kind = .realloc
      case UInt8(ascii: "f"): kind = .free
      default: continue
      }
      events.append(Event(kind: kind, id: Int32(id), size: fields.count > 1 ? fields[1] : 0, alignment: fields.count > 2 ? fields[2] : 16))
      ids = max(ids, id + 1)
    }
    if events.isEmpty { return nil }
  }

  /// The first `count` events, with frees and reallocs of ids not allocated in them left out.
  func prefix(_ count: Int) -> RecordedTrace {
    var copy = self
    var live = [Bool](repeating: false, count: ids)
    copy.events = []
    for event in events.prefix(count) {
      switch event.kind {
      case .malloc, .calloc, .aligned: live[Int(event.id)] = true
      case .realloc: if !live[Int(event.id)] { continue }
      case .free: if !live[Int(event.id)] { continue }; live[Int(event.id)] = false
      }
      copy.events.append(event)
    }
    return copy
  }
}

/// Replays `trace` on `allocator`; ns per event. Calloc zeroes what it gets, realloc
/// is the allocator's own (allocate, copy, free where it has none). A failed allocation
/// stops the run (returns nil).
func replay<A: BenchAllocator>(_ allocator: inout A, _ trace: RecordedTrace) -> Double? {
  let slots = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: trace.ids)
  let sizes = UnsafeMutablePointer<Int>.allocate(capacity: trace.ids)
  slots.initialize(repeating: nil, count: trace.ids)
  sizes.initialize(repeating: 0, count: trace.ids)
  defer {
    for i in 0..<trace.ids { if let p = slots[i] { allocator.free(p) } }
    slots.deallocate()
    sizes.deallocate()
  }
  let start = now()
  for event in trace.events {
    let id = Int(event.id)
    switch event.kind {
    case .malloc:
      guard let p = allocator.allocate(event.size) else { return nil }
      slots[id] = p
      sizes[id] = event.size
    case .calloc:
      guard let p = allocator.allocate(event.size) else { return nil }
      memset(p, 0, event.size)
      slots[id] = p
      sizes[id] = event.size
    case .aligned:
      guard let p = allocator.allocate(event.size, alignment: event.alignment) else { return nil }
      slots[id] = p
      sizes[id] = event.size
    case .realloc:
      guard let old = slots[id], let p = allocator.reallocate(old, from: sizes[id], to: event.size) else { return nil }
      slots[id] = p
      sizes[id] = event.size
    case .free:
      if let p = slots[id] { allocator.free(p) }
      slots[id] = nil
    }
  }
  return Double(now() - start) / Double(trace.events.count)
}
