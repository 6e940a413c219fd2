#!/usr/bin/env bash
# Installs, when a machine lacks them, what `make bench` compares against and measures
# with, from Debian's packages: jemalloc (libjemalloc2) and mimalloc (libmimalloc2.0),
# which membench loads with dlopen, and valgrind and gcc for
# scripts/bench_instructions.py. Never fails: without root, apt-get or the network it
# says what is missing, and membench and the script skip those columns.
set -uo pipefail
missing=()
have_library() { ldconfig -p 2>/dev/null | grep -q "$1" || [ -e "/usr/lib/x86_64-linux-gnu/$1" ] || [ -e "/usr/lib/aarch64-linux-gnu/$1" ]; }
have_library libjemalloc.so.2 || missing+=(libjemalloc2)
have_library libmimalloc.so.2 || missing+=(libmimalloc2.0)
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "make bench: missing ${missing[*]} (Debian packages; apt-get install -y --no-install-recommends ${missing[*]}); those columns are skipped" >&2
  exit 0
fi
echo "make bench: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
  echo "make bench: could not install ${missing[*]}; those columns are skipped" >&2
fi
exit 0
