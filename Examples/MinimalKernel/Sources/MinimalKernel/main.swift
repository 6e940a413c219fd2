// The example kernel: memory from the firmware's device tree, then kmalloc, Swift's own
// allocations (a Dictionary) and an object cache on it. Exits 0 when all of it worked.
import Boot
import KernelMemory

/// Prints `message` and ends the run with status 1.
func fail(_ message: StaticString, _ value: UInt = 0) -> Never {
  print("MinimalKernel: FAIL ", terminator: "")
  print(message, terminator: " ")
  print(value)
  kernel_exit(1)
}

/// Everything the kernel does, top to bottom.
func kernelMain() -> Never {
  // 1. Before anything else: how the package tells CPUs apart. This kernel runs one.
  CPU.install(.single, count: 1)

  // 2. Bad input anywhere in the memory subsystem: say it and stop.
  badInputHandler = { report in
    print("bad input: ", terminator: "")
    print(report.function, terminator: ": ")
    print(report.reason, terminator: " ")
    print(report.address)
    kernel_exit(2)
  }

  // 3. RAM and reservations from the device tree: x0 at entry, or where QEMU virt puts
  //    it for an ELF image (the RAM base).
  let treeAddress = boot_device_tree_address() != 0 ? UInt(boot_device_tree_address()) : 0x4000_0000
  guard let header = UnsafeRawPointer(bitPattern: treeAddress),
    let treeBytes = DeviceTree.totalSize(ofHeader: UnsafeRawBufferPointer(start: header, count: DeviceTree.headerBytes))
  else { fail("no device tree at", treeAddress) }
  var memory = BootMemory()
  do throws(MemInitError) {
    let tree = try DeviceTree(blob: UnsafeRawBufferPointer(start: header, count: treeBytes), physicalAddress: treeAddress)
    _ = try tree.describe(into: &memory)
  } catch {
    fail(error.reason.text, error.address)
  }

  // 4. memInit: the page array after the image, the heap after the array, the rest free.
  do throws(MemInitError) {
    let layout = try memInit(MemInitConfig(
      memory: memory, kernelStart: UInt(boot_kernel_start()), kernelEnd: UInt(boot_kernel_end()), zeroFill: boot_zero))
    print("MinimalKernel: memInit ok, ", terminator: "")
    print(layout.pageCount, terminator: " pages of RAM, heap at ")
    print(layout.heapStart)
  } catch {
    fail(error.reason.text, error.address)
  }

  // 5. kmalloc and kfree.
  guard let buffer = kmalloc(256) else { fail("kmalloc(256) returned nil") }
  buffer.initializeMemory(as: UInt8.self, repeating: 0xA5, count: 256)
  kfree(buffer)

  // 6. Swift's runtime allocates through the heap too (KernelHeapRuntime's posix_memalign).
  var squares: [Int: Int] = [:]
  for value in 1...100 { squares[value] = value * value }
  guard squares[12] == 144, squares.count == 100 else { fail("dictionary", UInt(squares.count)) }

  // 7. An object cache of 48-byte objects at 64-byte alignment.
  guard let nodes = kmemCacheCreate(objectSize: 48, alignment: 64) else { fail("kmemCacheCreate") }
  var objects: [UnsafeMutableRawPointer] = []
  for _ in 0..<100 {
    guard let object = kmemCacheAlloc(nodes) else { fail("kmemCacheAlloc") }
    guard Int(bitPattern: object) % 64 == 0 else { fail("object alignment", UInt(bitPattern: Int(bitPattern: object))) }
    objects.append(object)
  }
  for object in objects { kmemCacheFree(nodes, object) }
  objects = []
  guard kmemCacheDestroy(nodes) else { fail("kmemCacheDestroy") }

  // 8. A page, and the heap's own check.
  guard let page = allocPage() else { fail("allocPage") }
  freePage(page)
  if let broken = heapCheck() { fail(broken.reason, broken.address) }

  print("MinimalKernel: kmalloc, Dictionary (", terminator: "")
  print(squares.count, terminator: " entries), object cache and pages ok; boot stack used ")
  print(boot_stack_used(), terminator: " bytes\n")
  kernel_exit(0)
}

kernelMain()
