#!/usr/bin/env bash
# Installs what the QEMU boots of `make test` need, from Debian's packages:
#  - qemu-system-aarch64 that knows raspi4b (QEMU 9.0 or later). Debian 12 ships 7.2, so
#    when the installed QEMU lacks raspi4b the release's -backports suite is added, from
#    the same mirror the machine's own apt sources use, and qemu-system-arm comes from it;
#  - qemu-system-riscv64 (Debian's qemu-system-misc) and OpenSBI, its `-bios default`,
#    for the riscv64-virt boots: from the same suite as qemu-system-arm, so that both
#    share one qemu-system-common;
#  - dtc (device-tree-compiler), for the test device trees.
# Without root or apt-get it says what is missing. Where no QEMU 9+ can be had, the
# raspi4b boots are reported as skipped by scripts/run_tests.py.
set -euo pipefail

has_raspi4b() { command -v qemu-system-aarch64 >/dev/null 2>&1 && qemu-system-aarch64 -M help | grep -q '^raspi4b '; }
has_riscv() { command -v qemu-system-riscv64 >/dev/null 2>&1 && ls /usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.* >/dev/null 2>&1; }

if has_raspi4b && has_riscv && command -v dtc >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing: qemu-system-aarch64 with raspi4b (QEMU 9+), qemu-system-riscv64 with OpenSBI and/or dtc;" \
    "install qemu-system-arm, qemu-system-misc, opensbi and device-tree-compiler" >&2
  has_raspi4b || command -v qemu-system-aarch64 >/dev/null 2>&1 || exit 1
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq qemu-system-arm device-tree-compiler >/dev/null
if ! has_raspi4b; then
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(grep -hom1 'https\?://[^ ]*' /etc/apt/sources.list 2>/dev/null | head -1 || true)
  if [ -n "$codename" ] && [ -n "$mirror" ]; then
    printf 'Types: deb\nURIs: %s\nSuites: %s-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$mirror" "$codename" > "/etc/apt/sources.list.d/${codename}-backports.sources"
    apt-get update -qq
    apt-get install -y -qq -t "${codename}-backports" qemu-system-arm >/dev/null || true
  fi
  has_raspi4b || echo "no QEMU 9+ with raspi4b could be installed: the raspi4b boots will be skipped" >&2
fi
if ! has_riscv; then
  # The suite qemu-system-arm came from (backports when the release's QEMU was too old).
  suite=$(apt-cache policy qemu-system-common 2>/dev/null | awk '/\*\*\*/ { getline; print $3; exit }' | cut -d/ -f1)
  if [ -n "$suite" ] && [ "$suite" != "now" ]; then
    apt-get install -y -qq -t "$suite" qemu-system-misc opensbi >/dev/null || apt-get install -y -qq qemu-system-misc opensbi >/dev/null || true
  else
    apt-get install -y -qq qemu-system-misc opensbi >/dev/null || true
  fi
  has_riscv || echo "no qemu-system-riscv64 with OpenSBI could be installed: the riscv64-virt boots will be skipped" >&2
fi
