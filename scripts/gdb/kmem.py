"""gdb commands for the kernel's memory structures. Load once per session:

    (gdb) source scripts/gdb/kmem.py

    kmem map          the memory map, as the boot log prints it
    kmem page ADDR    the page entry and owner of a physical address, and its run
    kmem heap         the heap's statistics, and its ASCII map when the heap is small
    kmem check        heapCheck() and the page allocator's invariants
    kmem bt           the backtrace with Swift names demangled

The kernel must be stopped after memInit (a breakpoint in it, say `break arch_exit`).
Each command calls a function of the kernel (KernelBoot/DebugCommands.swift) that only
reads the structures and prints into a buffer in the kernel's memory, and prints that
buffer. Swift names in the output are demangled with swift-demangle (from the Swift
toolchain) when it is installed.
"""
import os
import subprocess
import sys

import gdb

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
from toolchain import toolchain_tool  # noqa: E402


def demangle(text):
    tool = toolchain_tool("swift-demangle")
    if not tool:
        return text
    return subprocess.run([tool, "--simplified"], input=text, capture_output=True, text=True).stdout


def call_kernel(expression):
    """Calls a kernel function that returns a C string, and returns that string."""
    try:
        return gdb.parse_and_eval(expression).string()
    except gdb.error as error:
        raise gdb.GdbError(f"kmem: the kernel could not be called ({error}); stop it after memInit first")


class Kmem(gdb.Command):
    """Commands for the kernel's page frames and heap: kmem map, page, heap, check, bt."""

    def __init__(self):
        super().__init__("kmem", gdb.COMMAND_USER, prefix=True)


class KernelCall(gdb.Command):
    """A kmem command that calls one kernel function and prints the text it returns."""

    def __init__(self, name, function, takes_address=False):
        super().__init__("kmem " + name, gdb.COMMAND_USER)
        self.function = function
        self.takes_address = takes_address

    def invoke(self, argument, from_tty):
        if self.takes_address:
            if not argument.strip():
                raise gdb.GdbError(f"usage: kmem {self.function.split('_')[-1]} ADDR")
            address = int(gdb.parse_and_eval(argument))
            call = f"((const char *(*)(unsigned long)){self.function})({address:#x})"
        else:
            call = f"((const char *(*)(void)){self.function})()"
        gdb.write(demangle(call_kernel(call)))


class KmemBacktrace(gdb.Command):
    """The backtrace, with Swift names demangled."""

    def __init__(self):
        super().__init__("kmem bt", gdb.COMMAND_USER)

    def invoke(self, argument, from_tty):
        gdb.write(demangle(gdb.execute("backtrace " + argument, to_string=True)))


gdb.execute("set complaints 0")
Kmem()
KernelCall("map", "kmem_debug_map")  # the memory map
KernelCall("page", "kmem_debug_page", takes_address=True)  # a page entry, its owner and run
KernelCall("heap", "kmem_debug_heap")  # heap statistics and the small heap's ASCII map
KernelCall("check", "kmem_debug_check")  # heapCheck() and the page invariants
KmemBacktrace()
