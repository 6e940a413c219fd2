#!/usr/bin/env bash
# Builds .build-preload/libkmalloc.so (`make preload`): the kernel's PageFrames and
# KernelHeap sources in Embedded Swift for the host, plus Preload/PreloadSetup.swift,
# linked with the C shim (Preload/shim.c) into an LD_PRELOAD malloc; and
# .build-preload/kmrun, the run-and-measure helper of scripts/realworld.py, and
# .build-preload/stress (Preload/stress.c), its multi-threaded program.
#
#   scripts/build_preload.sh [OUT_DIR]      (default .build-preload)
#
# Environment: SWIFTC (default swiftc), CLANG (the toolchain's clang, else clang),
# SWIFT_OPT (default -O). Each module is one whole-module compile; every swiftc call is
# wrapped in flock on /tmp/swift-build.lock so parallel Swift builds on this machine
# take turns.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-$ROOT/.build-preload}"
SWIFTC="${SWIFTC:-swiftc}"
if [[ -z "${CLANG:-}" ]]; then
  CLANG="$(dirname "$(command -v "$SWIFTC")")/clang"
  [[ -x "$CLANG" ]] || CLANG=clang
fi
SWIFT_OPT="${SWIFT_OPT:--O}"
LOCK=/tmp/swift-build.lock

mkdir -p "$OUT/modules" "$OUT/obj"

SWIFT_FLAGS=(
  -enable-experimental-feature Embedded
  -target x86_64-unknown-linux-gnu
  -wmo "$SWIFT_OPT" -parse-as-library
  -package-name SwiftKernelMemory
  -Xcc -fPIC -Xllvm -relocation-model=pic
  -I "$OUT/modules"
)

# module name, then sources; extra flags after "--".
compile() {
  local name="$1"
  shift
  local sources=() extra=()
  while [[ $# -gt 0 && "$1" != "--" ]]; do sources+=("$1"); shift; done
  [[ $# -gt 0 ]] && shift && extra=("$@")
  echo "swiftc $name"
  flock "$LOCK" "$SWIFTC" "${SWIFT_FLAGS[@]}" "${extra[@]}" -module-name "$name" \
    -emit-module -emit-module-path "$OUT/modules/$name.swiftmodule" \
    -c "${sources[@]}" -o "$OUT/obj/$name.o"
}

# The C atomics module the locks are built on: a module map over its header.
mkdir -p "$OUT/cmodules/KernelSyncAtomics"
printf 'module KernelSyncAtomics {\n  header "%s"\n  export *\n}\n' \
  "$ROOT/Sources/KernelSyncAtomics/include/KernelSyncAtomics.h" > "$OUT/cmodules/KernelSyncAtomics/module.modulemap"
SWIFT_FLAGS+=(-I "$OUT/cmodules/KernelSyncAtomics" -Xcc -I -Xcc "$ROOT/Sources/Arch/PerCPU/include")

compile KernelSync "$ROOT"/Sources/KernelSync/*.swift
compile PageFrames "$ROOT"/Sources/PageFrames/*.swift
compile KernelHeap "$ROOT"/Sources/KernelHeap/*.swift
compile FlattenedDeviceTree "$ROOT"/Sources/FlattenedDeviceTree/*.swift
compile MemInit "$ROOT"/Sources/MemInit/*.swift
compile VirtualMemory "$ROOT"/Sources/VirtualMemory/*.swift
compile KernelMemory "$ROOT"/Sources/KernelMemory/*.swift
compile KernelMallocPreload "$ROOT"/Preload/PreloadSetup.swift "$ROOT"/Preload/PreloadThreadCache.swift -- -I "$ROOT/Preload/include"

echo "clang libkmalloc.so"
flock "$LOCK" "$CLANG" -shared -fPIC -O2 -fvisibility=hidden -ftls-model=initial-exec -std=c11 -Wall -Wextra \
  -I "$ROOT/Preload/include" \
  -I "$ROOT/Sources/KernelSyncAtomics/include" -I "$ROOT/Sources/Arch/PerCPU/include" "$ROOT/Preload/cpu.c" "$ROOT/Sources/KernelSyncAtomics/serials.c" "$ROOT/Sources/KernelSyncAtomics/numbering.c" \
  "$ROOT/Preload/shim.c" "$ROOT/Preload/tcache.c" "$OUT/obj/KernelSync.o" "$OUT/obj/PageFrames.o" "$OUT/obj/KernelHeap.o" \
  "$OUT/obj/FlattenedDeviceTree.o" "$OUT/obj/MemInit.o" "$OUT/obj/VirtualMemory.o" "$OUT/obj/KernelMemory.o" "$OUT/obj/KernelMallocPreload.o" \
  -Wl,--version-script="$ROOT/Preload/exports.map" -Wl,-z,now -Wl,--no-undefined -lpthread \
  -o "$OUT/libkmalloc.so.tmp"
mv "$OUT/libkmalloc.so.tmp" "$OUT/libkmalloc.so"

# The measuring helper of scripts/realworld.py, and its multi-threaded stress program.
"$CLANG" -O2 -Wall -o "$OUT/kmrun" "$ROOT/Preload/kmrun.c"
"$CLANG" -O2 -Wall -pthread -o "$OUT/stress" "$ROOT/Preload/stress.c"

# Exactly the intended names, and nothing from Swift.
expected="aligned_alloc calloc free malloc malloc_usable_size memalign posix_memalign pvalloc realloc reallocarray valloc"
exported="$(nm -D --defined-only "$OUT/libkmalloc.so" | awk '$2 ~ /^[TW]$/ {print $3}' | sed 's/@.*//' | sort | tr '\n' ' ' | sed 's/ $//')"
if [[ "$exported" != "$expected" ]]; then
  echo "build_preload: unexpected exports: $exported" >&2
  exit 1
fi
echo "built $OUT/libkmalloc.so"
