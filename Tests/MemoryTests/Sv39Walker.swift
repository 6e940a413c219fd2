/// The Sv39 walk, from the RISC-V privileged specification ("Virtual Address
/// Translation Process", with Sv39's LEVELS = 3, PTESIZE = 8, PAGESIZE = 4096): the
/// steps below are the specification's, numbered as there. Supervisor mode with
/// satp.MODE = 8 and satp.PPN = root / 4096; no Svnapot and no Svpbmt (bits 63:54 of a
/// PTE are reserved), hardware A/D updating off (a leaf with A clear, or a writable
/// one with D clear, faults); sstatus.SUM = 1 (the kernel may read and write U pages,
/// as AArch64 without PAN), MXR = 0. PMP and PMA checks are not modelled: `device` is
/// always false.
///
/// Written apart from `TranslationFormat`: it decodes every PTE bit itself.
extension TranslationWalker {
  /// VPN[i] of `va`: bits 20:12, 29:21, 38:30.
  private func sv39VirtualPageNumber(_ va: UInt, _ i: Int) -> UInt { (va >> UInt(12 + 9 * i)) & 0x1ff }

  /// PPN[i] of a PTE: bits 18:10 (9 bits), 27:19 (9 bits), 53:28 (26 bits).
  private func sv39PhysicalPageNumber(_ pte: UInt64, _ i: Int) -> UInt {
    i < 2 ? UInt((pte >> UInt64(10 + 9 * i)) & 0x1ff) : UInt((pte >> 28) & 0x3ff_ffff)
  }

  /// The Sv39 walk for virtual address `va`, levels given as `TranslationFormat` numbers
  /// them (the specification's i = 2, 1, 0 are levels 1, 2, 3).
  func walkSv39(_ va: UInt) -> Result<Translation, Fault> {
    // Instruction fetches, loads and stores need bits 63:39 of the address to equal
    // bit 38, else a page fault (the address is not canonical).
    let upper = va >> 38
    guard upper == 0 || upper == (1 << 26) - 1 else { return .failure(.addressSize) }
    // 1. Let a be satp.ppn × PAGESIZE, and let i = LEVELS − 1.
    var a = (root >> 12) * 4096
    var i = 2
    while true {
      let level = 3 - i
      // 2. Let pte be the value of the PTE at address a + va.vpn[i] × PTESIZE.
      let pte = read(a + sv39VirtualPageNumber(va, i) * 8)
      let v = pte & 1 != 0
      let r = pte >> 1 & 1 != 0
      let w = pte >> 2 & 1 != 0
      let x = pte >> 3 & 1 != 0
      let u = pte >> 4 & 1 != 0
      let g = pte >> 5 & 1 != 0
      let accessed = pte >> 6 & 1 != 0
      let dirty = pte >> 7 & 1 != 0
      // 3. If pte.v = 0, or if pte.r = 0 and pte.w = 1, or if any bits or encodings
      //    that are reserved for future standard use are set within pte, stop and raise
      //    a page-fault exception.
      if !v || (!r && w) || pte >> 54 != 0 { return .failure(.translation(level: level)) }
      // 4. Otherwise, the PTE is valid. If pte.r = 1 or pte.x = 1, go to step 5.
      //    Otherwise, this PTE is a pointer to the next level of the page table. Let
      //    i = i − 1. If i < 0, stop and raise a page-fault exception. Otherwise, let
      //    a = pte.ppn × PAGESIZE and go to step 2.
      if !r && !x {
        // For non-leaf PTEs the D, A and U bits are reserved (software clears them).
        if u || accessed || dirty { return .failure(.translation(level: level)) }
        i -= 1
        if i < 0 { return .failure(.translation(level: level)) }
        a = UInt((pte >> 10) & ((1 << 44) - 1)) * 4096
        continue
      }
      // 5. A leaf PTE has been found: what each mode may do with it (the access's own
      //    check is the test's): supervisor mode reads R pages (U ones too, with SUM),
      //    writes W pages and executes X pages that are not U; user mode uses U pages only.
      // 6. If i > 0 and pte.ppn[i − 1 : 0] ≠ 0, this is a misaligned superpage; stop
      //    and raise a page-fault exception.
      for j in 0..<i where sv39PhysicalPageNumber(pte, j) != 0 { return .failure(.outputAddress(level: level)) }
      // 7. If pte.a = 0, or if the original memory access is a store and pte.d = 0:
      //    with hardware updating off, a page-fault exception.
      if !accessed || (w && !dirty) { return .failure(.accessFlag(level: level)) }
      // 8. The translation is successful: pa.pgoff = va.pgoff; if i > 0 (a superpage),
      //    pa.ppn[i − 1 : 0] = va.vpn[i − 1 : 0]; pa.ppn[LEVELS − 1 : i] =
      //    pte.ppn[LEVELS − 1 : i].
      var physical = va & 0xfff
      for j in 0..<3 {
        physical |= (j < i ? sv39VirtualPageNumber(va, j) : sv39PhysicalPageNumber(pte, j)) << UInt(12 + 9 * j)
      }
      return .success(
        Translation(
          physical: physical, level: level, kernelReadable: r, kernelWritable: w, kernelExecutable: x && !u,
          userReadable: u && r, userWritable: u && w, userExecutable: u && x, device: false, global: g))
    }
  }
}
