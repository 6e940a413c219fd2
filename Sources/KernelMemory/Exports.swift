// One import for a kernel: the facade and the modules its API speaks in (page owners
// and errors, heaps and object caches, memInit's configuration and layout, and the CPU
// numbering a kernel installs, and the translation tables of VirtualMemory).
@_exported import KernelHeap
@_exported import MemInit
@_exported import KernelSync
@_exported import PageFrames
@_exported import VirtualMemory
