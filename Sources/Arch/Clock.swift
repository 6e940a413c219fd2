// The generic timer's virtual counter, for timing and for counting guest instructions.
#if os(none)
import ArchSupport
import KernelPlatform

public enum Clock {
  /// The virtual counter (CNTVCT_EL0), read after an isb.
  public static var ticks: UInt64 { arch_counter() }

  /// Counter ticks per second (CNTFRQ_EL0).
  public static var frequency: UInt64 { arch_counter_frequency() }

  /// Nanoseconds of the virtual clock since `start` (a `ticks` reading). Under QEMU's
  /// `-icount shift=0` the virtual clock advances one nanosecond per guest instruction,
  /// so this is an instruction count, exact to one counter tick (16 at 62.5 MHz).
  public static func nanoseconds(since start: UInt64) -> UInt64 {
    BoardPlatform().nanoseconds(since: start)
  }
}

#endif
