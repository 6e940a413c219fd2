// jemalloc and mimalloc beside glibc: Debian's shared libraries, loaded at run time
// with dlopen and called through the function pointers dlsym gives for the handle
// (the library's own symbols, not the process's malloc). Nothing links them; a
// library that is missing is skipped with one line on stderr.
import Glibc

/// A malloc from a shared library, loaded with `dlopen(RTLD_NOW | RTLD_LOCAL |
/// RTLD_DEEPBIND)`: local, so the process's own malloc (glibc's, which Swift's runtime
/// uses) stays what it is; deep-bound, so the library's calls to its own exported names
/// (C++ operator delete calls `free`, mimalloc's aligned path calls `mi_free`) stay
/// inside it.
struct MallocLibrary {
  typealias Malloc = @convention(c) (Int) -> UnsafeMutableRawPointer?
  typealias Free = @convention(c) (UnsafeMutableRawPointer?) -> Void
  typealias Realloc = @convention(c) (UnsafeMutableRawPointer?, Int) -> UnsafeMutableRawPointer?
  typealias PosixMemalign = @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>?, Int, Int) -> Int32

  /// Which library, its file, its Debian package and the names of its four calls.
  struct Spec {
    var name: String
    var file: String
    var package: String
    var malloc: String
    var free: String
    var realloc: String
    var posixMemalign: String

    /// Package libjemalloc2: jemalloc 5 exports the standard names itself.
    static let jemalloc = Spec(
      name: "jemalloc", file: "libjemalloc.so.2", package: "libjemalloc2",
      malloc: "malloc", free: "free", realloc: "realloc", posixMemalign: "posix_memalign")
    /// Package libmimalloc2.0: mimalloc's own `mi_` names.
    static let mimalloc = Spec(
      name: "mimalloc", file: "libmimalloc.so.2", package: "libmimalloc2.0",
      malloc: "mi_malloc", free: "mi_free", realloc: "mi_realloc", posixMemalign: "mi_posix_memalign")
  }

  let name: String
  let malloc: Malloc
  let free: Free
  let realloc: Realloc
  let posixMemalign: PosixMemalign

  /// The environment variable set on the one re-exec for jemalloc's static TLS.
  static let reexecMarker = "MEMBENCH_STATIC_TLS_REEXEC"
  /// Surplus static TLS asked of glibc on the re-exec, bytes (glibc's default is 512).
  static let staticTLSSurplus = 16384

  /// Opens `spec`'s library and looks up its calls; nil, after one line on stderr
  /// saying it is skipped and how to install it, when it cannot be loaded.
  ///
  /// jemalloc keeps its thread state in initial-exec TLS (2.6 KiB, `DF_STATIC_TLS`),
  /// which a library opened after start-up can only get from glibc's surplus static
  /// TLS, 512 bytes by default: dlopen then fails with "cannot allocate memory in
  /// static TLS block". membench then runs itself again once, at once, with
  /// `GLIBC_TUNABLES=glibc.rtld.optional_static_tls=16384` (it must be set before the
  /// process starts); call this before anything is printed or any thread is started.
  static func load(_ spec: Spec) -> MallocLibrary? {
    guard let handle = dlopen(spec.file, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND) else {
      let error = dlerror().map { String(cString: $0) } ?? "not found"
      if error.contains("static TLS") && getenv(reexecMarker) == nil { reexecWithStaticTLS() }
      skipped(spec, because: error)
      return nil
    }
    func symbol<F>(_ name: String, as type: F.Type) -> F? {
      dlsym(handle, name).map { unsafeBitCast($0, to: type) }
    }
    guard let malloc = symbol(spec.malloc, as: Malloc.self), let free = symbol(spec.free, as: Free.self),
      let realloc = symbol(spec.realloc, as: Realloc.self),
      let posixMemalign = symbol(spec.posixMemalign, as: PosixMemalign.self)
    else {
      skipped(spec, because: "\(spec.file) lacks \(spec.malloc), \(spec.free), \(spec.realloc) or \(spec.posixMemalign)")
      return nil
    }
    return MallocLibrary(name: spec.name, malloc: malloc, free: free, realloc: realloc, posixMemalign: posixMemalign)
  }

  private static func skipped(_ spec: Spec, because reason: String) {
    var line = "membench: \(spec.name) skipped (\(reason)); "
    if reason.contains("static TLS") {
      line += "run membench with GLIBC_TUNABLES=glibc.rtld.optional_static_tls=\(staticTLSSurplus)\n"
    } else {
      line += "install it with apt-get install -y --no-install-recommends \(spec.package) (make bench does when it can)\n"
    }
    fputs(line, stderr)
  }

  /// Runs this program again with more surplus static TLS; returns only if exec fails.
  private static func reexecWithStaticTLS() {
    let tunable = "glibc.rtld.optional_static_tls=\(staticTLSSurplus)"
    let tunables = getenv("GLIBC_TUNABLES").map { String(cString: $0) + ":" + tunable } ?? tunable
    setenv("GLIBC_TUNABLES", tunables, 1)
    setenv(reexecMarker, "1", 1)
    fflush(stdout)
    execv("/proc/self/exe", CommandLine.unsafeArgv)
  }
}

/// The libraries loaded once, on first use.
enum MallocLibraries {
  static let jemalloc = MallocLibrary.load(.jemalloc)
  static let mimalloc = MallocLibrary.load(.mimalloc)
}

/// One of the dlopen'ed mallocs as a `BenchAllocator`.
///
/// The glibc column calls `posix_memalign(16)`, which glibc serves as `malloc` (its
/// chunks are 16-byte aligned on x86-64). jemalloc's and mimalloc's plain `malloc` is not
/// 16-byte aligned for every size (jemalloc has an 8-byte class; mimalloc has 8-, 24-,
/// 40- and 56-byte bins), and jemalloc's `posix_memalign` takes its slow aligned path
/// (about twice its malloc's time on this machine). So this rounds each request up to a
/// multiple of 16 and calls the library's plain malloc: the same 16-byte alignment
/// that the project's heap and glibc give, through each library's fast path. Larger
/// alignments go to the library's `posix_memalign`.
struct DynamicMalloc: BenchAllocator {
  /// The library's own name is `name`; this one only answers the protocol.
  static let name = "dlopen"
  let name: String
  let malloc: MallocLibrary.Malloc
  let release: MallocLibrary.Free
  let resize: MallocLibrary.Realloc
  let posixMemalign: MallocLibrary.PosixMemalign

  init(_ library: MallocLibrary) {
    name = library.name
    malloc = library.malloc
    release = library.free
    resize = library.realloc
    posixMemalign = library.posixMemalign
  }

  @inline(__always) mutating func allocate(_ size: Int) -> UnsafeMutableRawPointer? { malloc((size + 15) & ~15) }
  @inline(__always) mutating func free(_ pointer: UnsafeMutableRawPointer) { release(pointer) }
  mutating func allocate(_ size: Int, alignment: Int) -> UnsafeMutableRawPointer? {
    if alignment <= 16 { return allocate(size) }
    var pointer: UnsafeMutableRawPointer?
    return posixMemalign(&pointer, alignment, size) == 0 ? pointer : nil
  }
  mutating func reallocate(_ pointer: UnsafeMutableRawPointer, from old: Int, to size: Int) -> UnsafeMutableRawPointer? {
    resize(pointer, (size + 15) & ~15)
  }
}
