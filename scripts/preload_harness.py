"""What the preload library's C test runners share (scripts/preload_kfence.py,
scripts/preload_tcache.py): the library's default path, and the start every run makes:
the library must exist and the runner's C test must build. Standard library only."""
import os
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, ".build-preload")
DEFAULT_LIB = os.path.join(OUT_DIR, "libkmalloc.so")


def build(source, name, flags):
    """Compiles Preload/`source` into .build-preload/`name` with the system's cc and
    `flags`; returns (path, error)."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not compiler:
        return None, "no C compiler (cc) found"
    os.makedirs(OUT_DIR, exist_ok=True)
    binary = os.path.join(OUT_DIR, name)
    proc = subprocess.run([compiler, *flags, "-o", binary, os.path.join(ROOT, "Preload", source)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return None, f"{compiler} failed: {proc.stderr.strip()[-500:]}"
    return binary, None


def prepare(lib, source, name, flags):
    """The library at `lib` and the test built: (absolute library path, test binary), or
    None after printing the FAIL line and the `0 passed, 1 failed` total."""
    lib = os.path.abspath(lib)
    if not os.path.exists(lib):
        print(f"FAIL preload: {lib} missing (make preload)")
        print("0 passed, 1 failed")
        return None
    binary, error = build(source, name, flags)
    if error:
        print(f"FAIL build {name}: {error}")
        print("0 passed, 1 failed")
        return None
    return lib, binary
