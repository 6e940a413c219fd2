// The kernel map under every core at once (run inside the `smp` case, after the heap
// stress): each core maps a page of its own, writes a pattern through the direct map,
// reads it back through the new mapping, remaps the address to another page and reads
// again; then all cores take turns remapping one shared address while every core reads
// it after each turn. A translation a TLB kept past its invalidation (TLBI VAE1IS must
// reach every core) shows as the previous round's pattern.
#if os(none)
import Arch
import KernelMemory
import Scenarios
import KernelSync
import KernelSyncAtomics
import PageFrames
import VirtualMemory

/// Rounds of the private remap per core (`vm-rounds=N` chooses from
/// `vmPrivateRoundsRange`: where each invalidation is an IPI through firmware, as on
/// RISC-V, the default takes minutes under QEMU), and of the shared one.
let vmDefaultPrivateRounds = 2_000
let vmPrivateRoundsRange = 10...2_000
nonisolated(unsafe) var vmPrivateRounds = vmDefaultPrivateRounds
let vmSharedRounds = 300
/// Where the stress maps: a 2 MiB window per worker from the start of the top eighth of
/// the addresses the table format translates (224 TiB with 48-bit addresses, 224 GiB
/// with Sv39's 38), above the direct map, the vmalloc range and the guarded pool; the
/// shared page above the last window.
var vmStressBase: UInt {
  let limit = BoardPlatform().translationFormat.addressLimit
  return limit - limit >> 3
}
var vmSharedAddress: UInt { vmStressBase + (UInt(CPU.maximum) << 21) }

/// Per worker: [failures, checks], set up by the boot core before the start.
nonisolated(unsafe) var vmStressResults: UnsafeMutablePointer<UInt64>? = nil
/// The barrier words and the two pages the shared address alternates between.
nonisolated(unsafe) var vmBarrierWords = SpinBarrierWords()
nonisolated(unsafe) var vmSharedPages: (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) = (nil, nil)

/// Sets up the results and shared pages for `cores` workers; false without memory.
func vmStressPrepare(cores: Int) -> Bool {
  guard kernelAddressSpace != nil, let results = kcalloc(2 * CPU.maximum, 8) else { return false }
  vmStressResults = results.bindMemory(to: UInt64.self, capacity: 2 * CPU.maximum)
  vmSharedPages = (allocPage(), allocPage())
  return vmSharedPages.0 != nil && vmSharedPages.1 != nil
}

/// Worker `worker`'s part (of `cores`): the private rounds, then the shared ones.
func vmStressWork(worker: Int, cores: Int) {
  guard let space = kernelAddressSpace, let results = vmStressResults,
    let first = vmSharedPages.0, let second = vmSharedPages.1
  else { return }
  var failures: UInt64 = 0
  var checks: UInt64 = 0
  let address = vmStressBase + UInt(worker) << 21
  let mapped = UnsafeMutablePointer<UInt64>(bitPattern: address).unsafelyUnwrapped
  for round in 0..<vmPrivateRounds {
    guard let pageA = allocPage(), let pageB = allocPage() else {
      failures += 1
      break
    }
    let patternA = UInt64(worker) << 48 | UInt64(round) << 1
    pageA.storeBytes(of: patternA, as: UInt64.self)
    pageB.storeBytes(of: ~patternA, as: UInt64.self)
    do throws(VirtualMemoryError) {
      try space.map(address, space.frames.physical(of: pageA), pages: 1, .kernelData)
      checks += 1
      if ks_load_relaxed64(mapped) != patternA { failures += 1 }
      try space.unmap(address, pages: 1)
      try space.map(address, space.frames.physical(of: pageB), pages: 1, .kernelData)
      checks += 1
      if ks_load_relaxed64(mapped) != ~patternA { failures += 1 }
      try space.unmap(address, pages: 1)
    } catch {
      failures += 1
    }
    freePage(pageA)
    freePage(pageB)
  }
  let barrier = withUnsafeMutablePointer(to: &vmBarrierWords) { SpinBarrier($0, parties: cores) }
  let shared = UnsafeMutablePointer<UInt64>(bitPattern: vmSharedAddress).unsafelyUnwrapped
  for round in 0..<vmSharedRounds {
    barrier.wait()
    if round % cores == worker {
      let page = round % 2 == 0 ? first : second
      page.storeBytes(of: UInt64(round), as: UInt64.self)
      do throws(VirtualMemoryError) {
        if round > 0 { try space.unmap(vmSharedAddress, pages: 1) }
        try space.map(vmSharedAddress, space.frames.physical(of: page), pages: 1, .kernelData)
      } catch {
        failures += 1
      }
    }
    barrier.wait()
    checks += 1
    if ks_load_relaxed64(shared) != UInt64(round) { failures += 1 }
  }
  barrier.wait()
  if worker == 0 { _ = try? space.unmap(vmSharedAddress, pages: 1) }
  results[2 * worker] = failures
  results[2 * worker + 1] = checks
}

/// Adds the stress's outcome for `cores` workers to `e`, prints one line and gives the
/// memory back.
func vmStressFinish(cores: Int, _ e: inout Expectations) {
  guard let results = vmStressResults else {
    e.expect(false, "vm: no memory for the stress", 0)
    return
  }
  var failures: UInt64 = 0
  var checks: UInt64 = 0
  for worker in 0..<cores {
    failures += results[2 * worker]
    checks += results[2 * worker + 1]
  }
  let expected = UInt64(cores * (2 * vmPrivateRounds + vmSharedRounds))
  e.expect(failures == 0, "vm: stale or wrong translations seen", UInt(failures))
  e.expect(checks == expected, "vm: reads done (of the expected)", UInt(checks))
  e.expect(kernelAddressSpace?.translate(vmStressBase) == nil, "vm: a stress page is still mapped", vmStressBase)
  e.expect(kernelAddressSpace?.checkInvariants() == nil, "vm: kernel address space invariants", 0)
  kput("vm: ")
  kputDecimal(UInt(checks))
  kput(" reads through remapped pages on ")
  kputDecimal(UInt(cores))
  kput(" cores, ")
  kputDecimal(UInt(failures))
  kput(" stale\n")
  if let first = vmSharedPages.0 { freePage(first) }
  if let second = vmSharedPages.1 { freePage(second) }
  vmSharedPages = (nil, nil)
  kfree(UnsafeMutableRawPointer(results))
  vmStressResults = nil
}

#endif
