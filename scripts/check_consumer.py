#!/usr/bin/env python3
"""A kernel of one's own on the package, as a new user builds it (`make test` runs this).

1. docs: a new package in a temporary folder, made of nothing but the files that
   docs/your-kernel.md lists (`<!-- file: PATH -->` before each code block), beside a
   link to this checkout under another folder name than the one the docs use. It is
   built and booted with the commands the page gives, from the package's folder.
2. example: Examples/MinimalKernel built in place from another folder (absolute paths
   only) and booted.

The page's files must be the example's, but for the dependency's path in Package.swift.
Prints one PASS or FAIL line per check; exits 1 when one fails.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
EXAMPLE = os.path.join(ROOT, "Examples", "MinimalKernel")
DOC = os.path.join(ROOT, "docs", "your-kernel.md")
DOC_DEPENDENCY = 'path: "../SwiftKernelMemory"'
EXPECTED = [r"(?m)^MinimalKernel: memInit ok, \d+ pages of RAM, heap at \d+$",
            r"(?m)^MinimalKernel: kmalloc, Dictionary \(100 entries\), object cache and pages ok; boot stack used \d+ bytes$"]
QEMU = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a53", "-m", "512M", "-display", "none",
        "-monitor", "none", "-serial", "stdio", "-semihosting-config", "enable=on,target=native"]


def doc_files():
    """PATH -> text of every `<!-- file: PATH -->` code block of the page."""
    text = open(DOC).read()
    blocks = re.findall(r"<!-- file: (\S+) -->\n```[^\n]*\n(.*?)\n```\n", text, re.S)
    return {path: body + "\n" for path, body in blocks}


def run(cmd, cwd, timeout):
    try:
        proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
        return proc.returncode, proc.stdout
    except subprocess.TimeoutExpired as e:
        return None, (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")


def build_and_boot(package, scratch, cwd):
    """Builds `package` for the kernel triple with its own toolset and boots it; an
    error or None."""
    code, out = run(["flock", "/tmp/swift-build.lock", "swift", "build", "--package-path", package,
                     "--triple", "aarch64-none-none-elf", "--toolset", os.path.join(package, "toolset.json"),
                     "-c", "release", "--scratch-path", scratch], cwd, 900)
    if code != 0:
        return "build failed:\n" + out[-3000:]
    code, out = run([*QEMU, "-kernel", os.path.join(scratch, "release", "MinimalKernel")], cwd, 120)
    missing = [p for p in EXPECTED if not re.search(p, out)]
    if code != 0 or missing:
        return f"boot ended with {code}, missing {missing}:\n{out[-2000:]}"
    print(out.rstrip())
    return None


def check_docs(workdir):
    files = doc_files()
    if "Package.swift" not in files or len(files) < 5:
        return f"docs/your-kernel.md lists {sorted(files)}: not a package"
    for path, body in files.items():
        with open(os.path.join(EXAMPLE, path)) as f:
            mine = f.read()
        if path == "Package.swift":
            if DOC_DEPENDENCY not in body:
                return f"the page's Package.swift has no {DOC_DEPENDENCY}"
            continue
        if body != mine:
            return f"the page's {path} differs from Examples/MinimalKernel/{path}"
    # The checkout under a folder name that is neither the docs' nor the repository's.
    os.symlink(ROOT, os.path.join(workdir, "kernel-memory-checkout"))
    package = os.path.join(workdir, "my-kernel")
    for path, body in files.items():
        if path == "Package.swift":
            body = body.replace(DOC_DEPENDENCY, 'path: "../kernel-memory-checkout"')
        target = os.path.join(package, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            f.write(body)
    return build_and_boot(package, os.path.join(package, ".build"), package)


def check_example(workdir):
    return build_and_boot(EXAMPLE, os.path.join(ROOT, ".build-example"), workdir)


def main():
    failures = 0
    for name, check, label in [
        ("docs", check_docs, "consumer: a new package from docs/your-kernel.md builds and boots on virt"),
        ("example", check_example, "consumer: Examples/MinimalKernel builds from another folder and boots on virt"),
    ]:
        if len(sys.argv) > 1 and name not in sys.argv[1:]:
            continue
        workdir = tempfile.mkdtemp(prefix="kmem-consumer-")
        try:
            error = check(workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if error:
            failures += 1
            print(error)
        print(("PASS " if error is None else "FAIL ") + label, flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
