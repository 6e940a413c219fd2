"""Finding the Swift toolchain's own tools (llvm-symbolizer, llvm-nm, swift-demangle)
on PATH or next to `swift`. Shared by scripts/symbolize, scripts/check_ram.py and
scripts/gdb/kmem.py."""
import os
import shutil


def toolchain_tool(name):
    """The path of `name`, or None when neither PATH nor the toolchain has it."""
    found = shutil.which(name)
    if found:
        return found
    swift = shutil.which("swift")
    if swift:
        candidate = os.path.join(os.path.dirname(os.path.realpath(swift)), name)
        if os.path.exists(candidate):
            return candidate
    return None
