import KernelSyncAtomics

/// How the package learns which CPU is calling: the kernel installs one with
/// `CPU.install(_:count:)` on the boot CPU, before other CPUs run and before `memInit`.
///
/// The number picks the per-CPU caches' slot and marks a lock's holder (a lock taken
/// again by its holder is refused instead of deadlocking), so it must be unique among
/// the CPUs running at one time and stable while a call runs.
public enum CPUNumbering {
  /// One CPU: every caller is CPU 0. What a kernel that runs no other CPU installs.
  case single
  /// Bare metal: the architecture's per-CPU register holds the address of a block whose
  /// first 32-bit word is the CPU's number (the register KernelSyncAtomics's
  /// `ks_cpu_block` reads, the one the kernel's architecture reserves for it). The
  /// kernel points the register at the block on each CPU before that CPU calls into
  /// the package. The fastest kind: a register read and one load, inline.
  case perCPURegister
  /// A function of the kernel's that returns the calling CPU's number. It is called on
  /// every allocation: it must be cheap, take no lock, allocate nothing, and work with
  /// interrupts masked.
  case function(@convention(c) () -> UInt32)
  /// Hosted builds only, and their default: each thread gets its own number the first
  /// time it asks (host tests). Thread numbers are not CPU numbers: `install` ignores
  /// `count` for them and allows any number below `CPU.countLimit`.
  case threads
}

/// The calling CPU, as the allocators' per-CPU caches and the locks see it.
///
/// The kernel says how to find it with `install(_:count:)`. Until it does, a bare-metal
/// build runs as one CPU and says so once on the console (through `putchar`); hosted
/// builds give each thread its own number. A number the installed source gives that is
/// not below `count` is said once and read as `count`, a number no real CPU has, so it
/// never reaches past a per-CPU table or makes a held lock look free.
public enum CPU {
  /// The most per-CPU slots a structure has: CPUs `0 ..< maximum` each get a slot of
  /// their own, with no two sharing one. CPUs numbered beyond share (slot = number
  /// modulo the slot count) and take turns at the slot's lock. A power of two.
  public static let maximum = 64

  /// The slots a hosted build's structures get: threads, numbered without bound, share
  /// them modulo 8.
  public static let hostedSlots = 8

  /// The per-CPU slots a structure made now gets: on bare metal the installed `count`
  /// rounded up to a power of two, at most `maximum`, so that each CPU has its own
  /// (1 with nothing installed); on hosted builds `hostedSlots`. Structures keep the
  /// number they were made with.
  /// - Complexity: O(1).
  public static var slots: Int {
    #if os(Linux) || os(macOS)
    return hostedSlots
    #else
    return slotCount(forCPUs: count)
    #endif
  }

  /// The power of two at or above `cpus`, clamped to 1 ... `maximum`: the slots that
  /// give `cpus` CPUs one each.
  /// - Complexity: O(1).
  public static func slotCount(forCPUs cpus: Int) -> Int {
    guard cpus > 1 else { return 1 }
    guard cpus < maximum else { return maximum }
    return 1 << (Int.bitWidth - (cpus - 1).leadingZeroBitCount)
  }

  /// The most CPUs `install(_:count:)` accepts: numbers and their lock words (number + 1)
  /// stay below 2^31.
  public static let countLimit = 1 << 31

  /// Makes `numbering` the way the package learns the calling CPU, for CPUs numbered
  /// `0 ..< count`.
  /// - Returns: false, changing nothing, when `count` is outside 1 ... `countLimit`, or
  ///   for `.perCPURegister` on a hosted build and `.threads` on a bare-metal one.
  /// - Precondition: called on the boot CPU before any other CPU calls into the package
  ///   (install it first thing at boot); tests may install again between runs.
  /// - Complexity: O(1).
  @discardableResult
  public static func install(_ numbering: CPUNumbering, count: Int) -> Bool {
    guard count >= 1 && count <= countLimit else { return false }
    var function: ks_cpu_number_function? = nil
    let kind: Int
    switch numbering {
    case .single: kind = Int(KS_CPU_SINGLE)
    case .perCPURegister:
      #if os(Linux) || os(macOS)
      return false
      #else
      kind = Int(KS_CPU_REGISTER)
      #endif
    case .function(let body):
      kind = Int(KS_CPU_FUNCTION)
      function = body
    case .threads:
      #if os(Linux) || os(macOS)
      ks_cpu_numbering.register_limit = 0
      ks_cpu_numbering.limit = UInt32(countLimit)
      ks_cpu_numbering.kind = UInt32(KS_CPU_THREADS)
      return true
      #else
      return false
      #endif
    }
    ks_cpu_numbering.function = function
    ks_cpu_numbering.limit = UInt32(count)
    ks_cpu_numbering.kind = UInt32(kind)
    ks_cpu_numbering.register_limit = kind == Int(KS_CPU_REGISTER) ? UInt32(count) : 0
    return true
  }

  /// The numbering installed, or nil when none is (a bare-metal build runs as one CPU).
  /// - Complexity: O(1).
  public static var numbering: CPUNumbering? {
    switch Int(ks_cpu_numbering.kind) {
    case Int(KS_CPU_SINGLE): return .single
    case Int(KS_CPU_REGISTER): return .perCPURegister
    case Int(KS_CPU_FUNCTION):
      guard let function = ks_cpu_numbering.function else { return nil }
      return .function(function)
    case Int(KS_CPU_THREADS): return .threads
    default: return nil
    }
  }

  /// The number of CPUs the installed numbering allows: numbers are `0 ..< count`.
  /// - Complexity: O(1).
  public static var count: Int { Int(ks_cpu_numbering.limit) }

  /// The calling CPU's number, `0 ... count`: below `count` for a CPU the numbering
  /// knows, `count` itself for a number it refused.
  /// - Complexity: O(1): on bare metal with `.perCPURegister`, inline: one load of the
  ///   numbering, the register read, the number's load and two branches; a call for the
  ///   other kinds.
  @inlinable @inline(__always)
  public static var current: Int { Int(ks_current_cpu()) }

  /// The calling CPU's number as a fast path wants it: inline with no call, nil whenever
  /// `current` would have to call. On bare metal that is a kind other than
  /// `.perCPURegister`, or a refused number; hosted, a numbering other than `.threads`,
  /// or a thread that has no number yet (the thread's number is a thread-local word
  /// read with one load). A path that gets nil falls back to one that uses `current`.
  /// - Complexity: O(1).
  @inlinable @inline(__always)
  public static var currentWithoutCalls: Int? {
    let number = ks_current_cpu_inline()
    return number == .max ? nil : Int(number)
  }

  /// The hint for one turn of a wait loop: the CPU's spin-wait hint on bare metal, and
  /// on hosted builds the thread gives up its time slice (the awaited thread may be
  /// descheduled on the same core).
  /// - Complexity: O(1).
  @inlinable @inline(__always)
  public static func relax() { ks_spin_hint() }

  #if !hasFeature(Embedded)
  /// Host tests only: makes the calling thread CPU `cpu` from now on. Two live threads
  /// must not be given the same number.
  /// - Complexity: O(1).
  public static func bind(_ cpu: Int) { ks_bind_cpu(UInt32(cpu)) }
  #endif
}
