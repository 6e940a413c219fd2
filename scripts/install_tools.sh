#!/usr/bin/env bash
# Installs, when a machine lacks them, from Debian's packages: the real programs `make
# realworld` runs (git, gcc, sqlite3, jq, xz, perl; python3 and coreutils' sort are on
# every machine of this kind) and gdb-multiarch for the gdb session test and `make
# debug`. Without root or apt-get it says what is missing; the tests that need it are
# then reported as skipped.
set -euo pipefail
missing=()
for pair in git:git gcc:gcc sqlite3:sqlite3 jq:jq xz:xz-utils perl:perl gdb-multiarch:gdb-multiarch; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing for make realworld: ${missing[*]} (Debian packages); those programs will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null || echo "could not install: ${missing[*]}" >&2
