#!/usr/bin/env bash
# Installs, when a machine lacks them, from Debian's packages: the real programs `make
# realworld` runs (git, gcc, sqlite3, jq, xz, perl; python3 and coreutils' sort are on
# every machine of this kind), CPython's test package when no python3 has it, and
# gdb-multiarch for the gdb session test and `make debug`. Without root or apt-get it
# says what is missing; the tests that need it are then reported as skipped.
set -euo pipefail
missing=()
for pair in git:git gcc:gcc sqlite3:sqlite3 jq:jq xz:xz-utils perl:perl gdb-multiarch:gdb-multiarch; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
# CPython's test package (test.test_json, test.test_dict, ...) for realworld's python-tests:
# Debian ships it apart from python3, as libpython3.X-testsuite. Only when neither the
# python3 on PATH nor Debian's own has it.
has_tests() { "$1" -c "import test.test_json, test.test_dict, test.test_list" >/dev/null 2>&1; }
if [ -x /usr/bin/python3 ] && ! has_tests /usr/bin/python3 && ! { command -v python3 >/dev/null 2>&1 && has_tests python3; }; then
  missing+=("libpython3.$(/usr/bin/python3 -c 'import sys; print(sys.version_info.minor)')-testsuite")
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing for make realworld: ${missing[*]} (Debian packages); those programs will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null || echo "could not install: ${missing[*]}" >&2
