/// Zeroes `count` bytes at a pointer: the assembly bzero in the kernel, memset on the
/// host. A C function pointer, so portable code can take it from Arch without importing it.
public typealias ZeroFill = @convention(c) (UnsafeMutableRawPointer?, Int) -> Void
