// swift-tools-version: 6.0
// One package, two builds from the same sources:
//  - host: `swift test` and `swift run -c release membench`
//  - kernel: `swift build --triple aarch64-none-none-elf --toolset qemu/<board>.json -c release`
//    (riscv64-virt: `--triple riscv64-none-none-eabi`; `make kernel BOARD=...` picks it)
import PackageDescription

let package = Package(
  name: "SwiftKernelMemory",
  products: [
    .library(name: "PageFrames", targets: ["PageFrames"]),
    .library(name: "KernelHeap", targets: ["KernelHeap"]),
    .library(name: "MemInit", targets: ["MemInit"]),
    .library(name: "KernelSync", targets: ["KernelSync"]),
    .library(name: "VirtualMemory", targets: ["VirtualMemory"]),
    // The architectures' table formats for VirtualMemory: .armv8Stage1 and .sv39.
    .library(name: "TranslationFormats", targets: ["TranslationFormats"]),
    .library(name: "KernelMemory", targets: ["KernelMemory"]),
    // malloc, free, calloc, realloc, posix_memalign and aligned_alloc over the kernel's
    // memory object, for the Swift runtime (bare-metal AArch64; kernels with their own
    // C allocator names leave it out).
    .library(name: "KernelHeapRuntime", targets: ["KernelHeapRuntime"]),
    .executable(name: "kernel", targets: ["Kernel"]),
    .executable(name: "testkernel", targets: ["TestKernel"]),
    .executable(name: "membench", targets: ["MemBench"]),
    .executable(name: "heapfuzz", targets: ["HeapFuzz"]),
    .executable(name: "dtbfuzz", targets: ["DTBFuzz"]),
  ],
  targets: [
    // Portable: no architecture code, host Swift and Embedded Swift from one source.
    // Locks that own their data (SpinLocked, TicketLocked, IRQSavingLocked) and the CPU
    // number, over the compiler's atomics (LDAXR/STLXR on the A53 and A72). Portable.
    .target(name: "KernelSyncAtomics", dependencies: ["ArchPerCPU"]),
    .target(name: "KernelSync", dependencies: ["KernelSyncAtomics"]),
    .target(name: "PageFrames", dependencies: ["KernelSync", "KernelSyncAtomics"]),
    .target(name: "KernelHeap", dependencies: ["PageFrames", "KernelSync"]),
    // Translation tables from page frames: map, unmap, protect, vmalloc and guard-paged
    // stacks; portable over the platform's descriptor format and TLB maintenance.
    .target(name: "VirtualMemory", dependencies: ["PageFrames", "KernelSync", "KernelSyncAtomics"]),
    // The C names (malloc, free, posix_memalign, ...) over KernelHeap; bare metal only.
    .target(name: "KernelHeapRuntime"),
    // The device tree reader: every node and property, every read bounds-checked.
    .target(name: "FlattenedDeviceTree"),
    .target(name: "MemInit", dependencies: ["PageFrames", "KernelHeap", "FlattenedDeviceTree", "KernelSync"]),
    // The facade: one object owning the page frames, the heap and the object caches, the
    // kernel's global instance, kmalloc and the rest, and the C allocator names' Swift side.
    .target(name: "KernelMemory", dependencies: ["PageFrames", "KernelHeap", "MemInit", "KernelSync", "VirtualMemory"]),
    // The shared test scenarios: run by `swift test` and by the QEMU test kernel.
    .target(name: "Scenarios", dependencies: ["PageFrames", "KernelHeap", "MemInit", "KernelMemory", "KernelSync"]),

    // Architecture and board code, one folder per architecture (AArch64: raspi3b,
    // raspi4b, virt; RISCV64: riscv64-virt). On the host only the translation-table
    // formats (AArch64's and RISC-V's Sv39), for the tests.
    .target(name: "ArchSupport", dependencies: ["ArchPerCPU"], exclude: ["linker"]),
    .target(
      name: "Arch",
      dependencies: ["ArchSupport", "KernelSync", "FlattenedDeviceTree", "KernelPlatform", "VirtualMemory", "TranslationFormats"],
      exclude: ["PerCPU", "AArch64/TranslationFormat+AArch64.swift", "RISCV64/TranslationFormat+Sv39.swift"]),
    // Each architecture's translation-table format (ARMv8-A stage 1, Sv39), from its
    // folder of Sources/Arch: for the kernel map, the host tests and kernels of one's own.
    .target(
      name: "TranslationFormats", dependencies: ["VirtualMemory"], path: "Sources/Arch",
      sources: ["AArch64/TranslationFormat+AArch64.swift", "RISCV64/TranslationFormat+Sv39.swift"]),
    // The per-CPU register read and the spin-wait hint, per architecture, header only:
    // all that the portable modules take from an architecture (through KernelSyncAtomics).
    .target(name: "ArchPerCPU", path: "Sources/Arch/PerCPU"),

    // What the boot flow needs from the machine: the boards implement it in Arch, host tests with a fake.
    .target(name: "KernelPlatform", dependencies: ["PageFrames", "FlattenedDeviceTree", "KernelSync", "VirtualMemory"]),
    // Bootable images: the boot sequence both share (generic over the platform, on the host too),
    // the demo kernel and the test kernel.
    .target(name: "KernelBoot", dependencies: ["KernelPlatform", "Arch", "MemInit", "KernelMemory", "KernelHeapRuntime"]),
    .executableTarget(name: "Kernel", dependencies: ["KernelBoot"]),
    .executableTarget(name: "TestKernel", dependencies: ["KernelBoot", "Scenarios"]),

    // Host-only benchmark (`make bench`).
    .executableTarget(name: "MemBench", dependencies: ["PageFrames", "KernelHeap", "MemInit", "KernelMemory", "Scenarios", "KernelSyncAtomics", "VirtualMemory", "TranslationFormats"]),

    // Host-only libFuzzer target (`make fuzz`); a plain build replays inputs.
    .executableTarget(name: "HeapFuzz", dependencies: ["PageFrames", "Scenarios", "FuzzReplay"]),
    // Host-only libFuzzer target for the device tree reader (`make fuzz-dtb`).
    .executableTarget(name: "DTBFuzz", dependencies: ["PageFrames", "MemInit", "FlattenedDeviceTree", "FuzzReplay"]),
    // Host only: what a plain build of a fuzz target does with files (replays them).
    .target(name: "FuzzReplay"),

    .testTarget(name: "MemoryTests", dependencies: ["PageFrames", "KernelHeap", "MemInit", "Scenarios", "KernelSync", "FlattenedDeviceTree", "KernelPlatform", "KernelBoot", "KernelMemory", "VirtualMemory", "TranslationFormats"]),
  ],
  swiftLanguageModes: [.v5]
)

// `make docs` only: KMEM_DOCS=1 adds swift-docc-plugin (`swift package generate-documentation`).
// A package that depends on this one never sets it, so it never resolves the plugin.
if Context.environment["KMEM_DOCS"] != nil {
  package.dependencies.append(.package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"))
}
