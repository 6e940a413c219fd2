// The boot flow on the board this image was built for: what the kernel and the test
// kernel call.
#if os(none)
import Arch

/// `Platform.bootMemory(secondaryEntry:kfenceInterval:)` on `BoardPlatform`: `kfenceInterval`
/// nil reads `kfence=N` from /chosen/bootargs (off without it).
/// Preconditions: as `Platform.bootMemory`: once, by the boot core, before any allocation.
/// - Complexity: as `Platform.bootMemory`.
@discardableResult
public func bootMemory(secondaryEntry: SecondaryEntry? = nil, kfenceInterval: Int? = nil) -> BootLayout {
  BoardPlatform().bootMemory(secondaryEntry: secondaryEntry, kfenceInterval: kfenceInterval)
}
#endif
