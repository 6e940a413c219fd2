// The machine as a whole: leaving it (QEMU exits with the status the guest chose), the panic line, and the semihosting command line.
#if os(none)
import ArchSupport
import KernelPlatform

public enum Machine {
  /// Ends the QEMU process with `code` as its exit status (semihosting).
  public static func exit(_ code: Int32) -> Never {
    arch_exit(code)
  }

  /// Prints "function: reason address" and exits with status 3. The kernel's answer to a
  /// broken invariant or a bad free.
  public static func panic(_ function: StaticString, _ reason: StaticString, _ address: UInt) -> Never {
    BoardPlatform().panic(function, reason, address)
  }

  /// The semihosting command line (`-semihosting-config arg=...`), or an empty buffer.
  /// Writes into `buffer` and returns the number of bytes used.
  public static func commandLine(into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
    guard let base = buffer.baseAddress, buffer.count > 1 else { return 0 }
    base.initialize(repeating: 0, count: buffer.count)
    let status = base.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
      arch_semihosting_cmdline($0, buffer.count - 1)
    }
    guard status == 0 else { return 0 }
    var length = 0
    while length < buffer.count && base[length] != 0 { length += 1 }
    return length
  }
}

#endif
