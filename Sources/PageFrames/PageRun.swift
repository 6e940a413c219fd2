/// An allocated run of pages as its page entries describe it.
public struct PageRun: Sendable, Equatable {
  /// What the run was allocated for.
  public let owner: PageOwner
  /// Physical address of its first page.
  public let start: UInt
  /// Its length in pages.
  public let pages: Int
  /// The word its owner stored with it (`allocPages(tag:)`).
  public let tag: UInt32

  /// A run description (for comparisons in tests).
  /// - Complexity: O(1).
  public init(owner: PageOwner, start: UInt, pages: Int, tag: UInt32) {
    self.owner = owner
    self.start = start
    self.pages = pages
    self.tag = tag
  }
}
