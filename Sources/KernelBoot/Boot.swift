// The kernel's start-up sequence, top to bottom, for any `Platform`: the boards' in
// Arch (after boot.S has held the other cores, dropped to EL1, enabled FP/SIMD, set the
// stack and the boot core's per-CPU block, zeroed .bss and turned on the MMU) and the
// host tests' fake. Generic, so each board's calls are direct (specialized).
@_exported import KernelMemory
import FlattenedDeviceTree
import KernelHeap
@_exported import KernelPlatform
@_exported import MemInit
@_exported import PageFrames

/// Virtual nanoseconds memInit took at boot: guest instructions under `-icount shift=0`.
public nonisolated(unsafe) var bootMemInitNanoseconds: UInt64 = 0
/// Virtual nanoseconds building the kernel map and switching to it took at boot.
public nonisolated(unsafe) var bootKernelMapNanoseconds: UInt64 = 0

/// Page order of each started core's kernel stack: 2^3 pages, 32 KiB, from vmalloc with
/// a guard page below it (from the page frames, owner `.allocated`, without a kernel
/// map), with the canary word at its low end.
public let secondaryStackOrder = 3
/// Page order of the kernel map's region list: 2 pages, 146 regions.
public let kernelMapRegionsOrder = 1
/// Page order of each started core's exception stack: 2^2 pages, 16 KiB (as the boot
/// core's), from the page frames: usable before the core's MMU is on.
public let secondaryExceptionStackOrder = 2

extension Platform {
  /// Brings up memory and prints the banner and the memory map, then brings up the other
  /// cores. Returns the layout.
  /// Panics ("memInit: reason address") if RAM cannot hold the kernel, array and heap.
  /// Afterwards `kernelMemory` is set up: kmalloc, kfree, allocPage and the rest work, and
  /// every core that came online runs `secondaryEntry` (nil: it parks at once). With
  /// `kfenceInterval` (or, when it is nil, `kfence=N` in /chosen/bootargs) above 0 the
  /// sampling memory-error detector is on (`setUpKernelGuardedPool`).
  ///
  /// Preconditions: called once, by the boot core, before any allocation; installs the
  /// kernel-wide `badInputHandler` and `kernelMemory`.
  /// - Complexity: O(RAM pages) for memInit, plus the wait for the cores (the platform's
  ///   time limit).
  @discardableResult
  public func bootMemory(secondaryEntry: SecondaryEntry? = nil, kfenceInterval: Int? = nil) -> BootLayout {
    // 0. How the package tells the cores apart, before the first lock is taken; bad
    //    input anywhere in the memory subsystem stops the kernel with a precise line.
    CPU.install(cpuNumbering, count: maximumCores)
    badInputHandler = onBadInput

    // 1. Banner: board, exception levels, kernel range, on a console set up as the
    //    hardware needs.
    setUpConsole()
    let image = kernelImage
    kput("SwiftKernelMemory: board ")
    kput(boardName)
    if let model = boardModel() {
      // The model the firmware reports, which may differ from the build's board
      // (a raspi3b image on a 3A+, say).
      kput(" (")
      kput(model.name)
      kput(", ")
      kputDecimal(model.memoryBytes >> 20)
      kput(" MiB, revision ")
      kputHex(UInt(model.revision))
      kput(")")
    }
    kput(", entered at ")
    kput(privilegeName(entryLevel))
    kput(", running at ")
    kput(privilegeName(runningLevel))
    kput("\n")

    // 2. Discover RAM and firmware's reservations: the device tree (from x0 or where QEMU
    //    puts it) lists every RAM range and reservation; without one, the mailbox gives
    //    the ARM's memory on Raspberry Pi boards.
    var memory = BootMemory()
    var source: StaticString = "device tree"
    // What the tree says of the cores, for step 5 (nil: no tree).
    var cores: DeviceTreeCores? = nil
    // The tree itself, for the MMIO the kernel map covers (step 4).
    var flattenedTree: FlattenedDeviceTree? = nil
    // Firmware's RAM total, counted apart from BootMemory: what the map is checked against.
    var firmwareRAMBytes: UInt = 0
    if let blob = deviceTree() {
      do throws(MemInitError) {
        let tree = try DeviceTree(blob: blob.bytes, physicalAddress: blob.physicalAddress)
        let summary = try tree.describe(into: &memory)
        firmwareRAMBytes = try tree.reportedRAMBytes()
        cores = try? tree.flattened.cores()
        flattenedTree = tree.flattened
        kput("device tree at ")
        kputHex(blob.physicalAddress, digits: 8)
        kput(" (")
        kputDecimal(UInt(tree.totalSize))
        kput(" bytes): ")
        kputDecimal(UInt(summary.ramRanges))
        kput(" RAM ranges, ")
        kputDecimal(UInt(summary.memoryReservations))
        kput(" memreserve, ")
        kputDecimal(UInt(summary.reservedMemory + summary.noMap))
        kput(" reserved-memory (")
        kputDecimal(UInt(summary.noMap))
        kput(" no-map)")
        kput(summary.initrd ? ", initrd\n" : "\n")
      } catch {
        panic("deviceTree", error.reason.text, error.address)
      }
    }
    // Without a tree: the mailbox's ARM memory, and on the Pi 4 the RAM above 1 GiB that
    // the board revision's memory size gives.
    // Where sources disagree, the tree wins: the others only fill in what it lacks.
    var highRAM: UInt? = nil
    do throws(MemInitError) {
      if memory.ram.count == 0, let arm = mailboxMemory() {
        source = "mailbox"
        try memory.addRAM(start: arm.base, size: arm.size)
        firmwareRAMBytes += arm.size
      }
      if let high = boardRevisionHighMemory(), memory.ramRange(containing: high.base) == nil {
        try memory.addRAM(start: high.base, size: high.size)
        firmwareRAMBytes += high.size
        highRAM = high.base
      }
    } catch {
      panic("mailbox", error.reason.text, error.address)
    }
    guard memory.ram.count > 0 else { panic("bootMemory", "firmware did not report RAM", 0) }
    for index in 0..<memory.ram.count {
      let range = memory.ram[index]
      kput("RAM [")
      kputHex(range.start, digits: 8)
      kput(", ")
      kputHex(range.end, digits: 8)
      kput(") ")
      kputDecimal(range.bytes >> 20)
      kput(" MiB, from the ")
      kput(range.start == highRAM ? "board revision" : source)
      kput("\n")
    }
    kput("kernel [")
    kputHex(image.start)
    kput(", ")
    kputHex(image.end)
    kput(")\n")

    // 3. memInit: page array and heap at the first fit after __end, reservations, free
    //    lists, then heapInit. Its per-CPU parts get a slot for each core that can come
    //    online (the tree's cpu nodes or the board's own, at most maximumCores), so the
    //    numbering is installed again with that count first.
    // A tree may claim more RAM than the board has (one written for a larger model):
    // where the board reports where its RAM ends, RAM at or above it is left out, and
    // said, as RAM beyond the identity map is.
    var limit = mappedLimit
    var beyond: StaticString = " is outside the identity map: "
    if let end = boardRAMEnd(), end > 0, end < limit {
      limit = end
      beyond = " is more than the board has (board revision): "
    }
    var present = coresWithoutTree
    if let listed = cores?.cpuNodes, listed > 0 { present = listed }
    CPU.install(cpuNumbering, count: max(1, min(present, maximumCores)))
    var config = MemInitConfig(
      memory: memory, kernelStart: image.start, kernelEnd: image.end, mappedLimit: limit,
      directMapOffset: directMapOffset, zeroFill: zeroFill)
    // The slab secret: the counter's value at this point differs from boot to boot on
    // hardware (and under QEMU without -icount); it is a tamper check, not cryptography.
    config.secretSeed = UInt(truncatingIfNeeded: counter)
    config.reservesMemoryBelowKernel = !firmwareDescribesItsMemory
    let layout: BootLayout
    let memInitStart = counter
    do {
      layout = try memInit(config)
    } catch {
      if error.needed > 0 {
        kput("memInit: needs ")
        kputDecimal(error.needed)
        kput(" bytes after the kernel, largest free stretch ")
        kputDecimal(error.available)
        kput(" bytes\n")
      }
      panic("memInit", error.reason.text, error.address)
    }
    bootMemInitNanoseconds = nanoseconds(since: memInitStart)

    // 4. The kernel map, built from page frames in place of the early identity map
    //    (identity still, so nothing moves): text read-execute, rodata read-only, data,
    //    .bss, the direct map of RAM read-write and never executable, the boot stack's
    //    guard page unmapped, MMIO from the tree and the board as device memory, and
    //    the vmalloc range for stacks and vmalloc, in the platform's table format.
    guard let frames = kernelMemory.frames else { panic("bootMemory", KernelMemory.notSetUpReason, 0) }
    if let maintenance = translationMaintenance {
      let mapStart = counter
      let format = translationFormat
      var devices = DeviceWindows(limit: format.addressLimit)
      addBoardDevices(to: &devices)
      if let flattenedTree {
        do throws(DeviceTreeError) {
          try flattenedTree.forEachDeviceRange { start, end in devices.add(start: start, end: end) }
        } catch {
          kput("kernel map: the device tree's MMIO could not be read; the board's own devices only\n")
        }
      }
      // The regions, in pages of their own (kept: exception reports read them).
      guard let regionMemory = allocPages(order: kernelMapRegionsOrder) else {
        panic("kernelMap", "no memory for the kernel map's regions (order)", UInt(kernelMapRegionsOrder))
      }
      let capacity = (Page.size << kernelMapRegionsOrder) / MemoryLayout<KernelMapRegion>.stride
      var regions = KernelMapRegions(
        storage: regionMemory.bindMemory(to: KernelMapRegion.self, capacity: capacity), capacity: capacity)
      guard kernelMapLayout(frames: frames, memory: layout.memory, devices: devices, into: &regions) else {
        panic("kernelMap", "more regions than the kernel map's list holds", UInt(capacity))
      }
      kernelMapRegions = regions
      do throws(VirtualMemoryError) {
        let space = try AddressSpace(frames: frames, maintenance: maintenance, format: format)
        try space.map(regions)
        try space.setVmallocRange(base: format.vmallocWindow.lowerBound, limit: format.vmallocWindow.upperBound)
        activateTranslation(root: space.root)
        kernelAddressSpace = space
      } catch {
        panic("kernelMap", error.reason.text, error.address)
      }
      bootKernelMapNanoseconds = nanoseconds(since: mapStart)
    }

    // 4b. The sampling memory-error detector (KFENCE), when asked for: `kfence=N` in
    //     /chosen/bootargs (QEMU's -append), or the caller's interval.
    var kfence = kfenceInterval ?? 0
    if kfenceInterval == nil, let arguments = try? flattenedTree?.bootArguments() {
      switch commandLineValue(arguments, named: "kfence") {
      case .some(.some(let value)): kfence = value
      case .some(.none): kput("kfence: the value of kfence= is not a number; off\n")
      case .none: break
      }
    }
    #if os(none)
    // The pool's hooks are the MMU's and the console's (KernelGuardedPool.swift).
    if kfence > 0 { setUpKernelGuardedPool(interval: kfence) }
    #endif

    // 5. Report: the memory map, each kind's range and page count, and the total against
    //    the RAM firmware reported.
    if layout.memory.clampedBytes > 0 {
      kput("RAM above ")
      kputHex(limit, digits: 8)
      kput(beyond)
      kputDecimal(layout.memory.clampedBytes >> 20)
      kput(" MiB not used\n")
    }
    printMemoryMap(MemoryMap(frames, reportedRAMBytes: firmwareRAMBytes), clampedPages: Int(layout.memory.clampedBytes >> 12))
    kput("heap [")
    kputHex(layout.heapStart)
    kput(", ")
    kputHex(layout.heapEnd)
    kput(")\n")
    if let space = kernelAddressSpace, let regions = kernelMapRegions {
      printKernelMap(regions, space: space, nanoseconds: bootKernelMapNanoseconds)
    }

    // 6. The other cores: each gets a kernel stack from vmalloc with a guard page below
    //    it (from the page frames without a kernel map) and an exception stack from the
    //    page frames, comes up at EL1 with the kernel map, prints "cpu N online" and runs
    //    `secondaryEntry`; the boot core waits for them, with a time limit.
    let stackBytes = Page.size << secondaryStackOrder
    let online = startSecondaryCores(
      described: cores, entry: secondaryEntry, stackBytes: stackBytes,
      exceptionStackBytes: Page.size << secondaryExceptionStackOrder,
      allocateStack: { cpu, exception in
        if exception { return allocPages(order: secondaryExceptionStackOrder) }
        if let space = kernelAddressSpace {
          guard let stack = try? space.allocateStack(bytes: stackBytes, cpu: cpu) else { return nil }
          return UnsafeMutableRawPointer(bitPattern: stack.bottom)
        }
        return allocPages(order: secondaryStackOrder)
      },
      freeStack: { _, stack, exception in
        if exception {
          freePages(stack, order: secondaryExceptionStackOrder)
        } else if let space = kernelAddressSpace {
          try? space.vfree(stack)
        } else {
          freePages(stack, order: secondaryStackOrder)
        }
      })
    withConsoleLock {
      kput("cores online: ")
      kputDecimal(UInt(online))
      kput("\n")
    }
    return layout
  }

  /// Prints one line per region (with the kernel map's permissions there, once it is in
  /// use: `rw-`, `--- not mapped`, or one per section for the image) and a final line
  /// comparing the bytes the map accounts for
  /// (plus any clamped above the identity map) with the RAM firmware reported
  /// (`map.ramSize`: in the kernel, the raw sum of the tree's memory `reg` sizes or of
  /// the mailbox's): `  total N pages [+ M clamped] = B bytes; firmware's RAM R bytes:
  /// exact` (or `MISMATCH`).
  /// - Complexity: O(regions × kernel map regions²).
  public func printMemoryMap(_ map: MemoryMap, clampedPages: Int = 0) {
    kput("memory map:\n")
    for index in 0..<map.count {
      let region = map[index]
      kput("  ")
      kput(region.owner.label)
      kput(" [")
      kputHex(region.start, digits: 8)
      kput(", ")
      kputHex(region.end, digits: 8)
      kput(") ")
      kputDecimal(UInt(region.pages))
      kput(" pages")
      if kernelAddressSpace != nil, let regions = kernelMapRegions {
        // What the kernel map allows there (the image: one per section).
        var separator: StaticString = " "
        regions.forEachPermission(from: region.start, to: region.end) { permissions in
          kput(separator)
          kput(permissions)
          separator = ", "
        }
      }
      kput("\n")
    }
    let accounted = map.totalPages + clampedPages
    kput("  total ")
    kputDecimal(UInt(map.totalPages))
    kput(" pages")
    if clampedPages > 0 {
      kput(" + ")
      kputDecimal(UInt(clampedPages))
      kput(" clamped")
    }
    kput(" = ")
    kputDecimal(UInt(accounted) << 12)
    kput(" bytes; firmware's RAM ")
    kputDecimal(map.ramSize)
    kput(" bytes: ")
    kput(UInt(accounted) << 12 == map.ramSize ? "exact\n" : "MISMATCH\n")
  }
}
