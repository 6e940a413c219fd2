// swift-tools-version: 6.0
// A kernel of its own on SwiftKernelMemory: boots on QEMU virt (AArch64), sets memory
// up from the firmware's device tree, and uses kmalloc, a Dictionary and an object cache.
//   swift build --package-path Examples/MinimalKernel --triple aarch64-none-none-elf \
//     --toolset Examples/MinimalKernel/toolset.json -c release
import PackageDescription

let package = Package(
  name: "MinimalKernel",
  dependencies: [
    // `name:` fixes the name `package:` refers to below, whatever the folder is called.
    .package(name: "SwiftKernelMemory", path: "../.."),
  ],
  targets: [
    // Start-up code and the C symbols the kernel provides (memset, putchar, ...).
    .target(name: "Boot"),
    .executableTarget(
      name: "MinimalKernel",
      dependencies: [
        "Boot",
        .product(name: "KernelMemory", package: "SwiftKernelMemory"),
        // malloc, free, posix_memalign for the Swift runtime, over the kernel heap.
        .product(name: "KernelHeapRuntime", package: "SwiftKernelMemory"),
      ],
      // The linker script by absolute path: the build works from any folder.
      linkerSettings: [.unsafeFlags(["-Xlinker", "-T", "-Xlinker", Context.packageDirectory + "/link.ld"])]
    ),
  ]
)
