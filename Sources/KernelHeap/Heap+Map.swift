extension Heap {
  /// Draws each arena as rows of 64 cells, each cell `cellBytes` bytes: `#` holds
  /// allocated bytes, `.` only free bytes, `|` the sentinel at the arena's end. Each row
  /// starts with its address. Output goes byte by byte to `write`.
  ///
  /// - Complexity: O(blocks + cells).
  public func drawMap(cellBytes: Int = 1024, _ write: (UInt8) -> Void) {
    _ = withAllLocks { core in unlockedDrawMap(core, cellBytes: cellBytes, write) }
  }

  private func unlockedDrawMap(_ core: HeapCore, cellBytes: Int, _ write: (UInt8) -> Void) {
    let hexDigits: StaticString = "0123456789abcdef"
    core.forEachArena { start, end in
      let arena = (start: start, end: end)
      var rowStart = arena.start
      while rowStart < arena.end {
        // Address column.
        write(48); write(120)
        var shift = 44
        while shift >= 0 {
          write(hexDigits.utf8Start[Int((rowStart >> UInt(shift)) & 0xF)])
          shift -= 4
        }
        write(32)
        var cell = 0
        while cell < 64 && rowStart + UInt(cell * cellBytes) < arena.end {
          let cellStart = rowStart + UInt(cell * cellBytes)
          write(cellSymbol(from: cellStart, to: min(cellStart + UInt(cellBytes), arena.end), arena: arena))
          cell += 1
        }
        write(10)
        rowStart += UInt(64 * cellBytes)
      }
    }
  }

  private func cellSymbol(from start: UInt, to end: UInt, arena: (start: UInt, end: UInt)) -> UInt8 {
    if end == arena.end && end - start <= UInt(Block.headerSize) { return 124 }  // |
    var block = UnsafeMutableRawPointer(bitPattern: arena.start)!
    // Walk to the block covering `start` (maps are for debugging; linear is fine).
    while UInt(bitPattern: block) + UInt(Block.size(block)) <= start && Block.size(block) != 0 {
      block += Block.size(block)
    }
    while UInt(bitPattern: block) < end && Block.size(block) != 0 {
      if !Block.isFree(block) { return 35 }  // #
      block += Block.size(block)
    }
    return 46  // .
  }
}
