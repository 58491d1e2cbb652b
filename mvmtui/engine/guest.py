"""A tiny real guest OS for the lab: Debian's cloud kernel + a busybox initramfs.

It boots in a second or two in 96 MiB and honours the ACPI power button, so the
console's graceful shutdown and reboot really reach a guest. It writes a counter to
its disk all the time (see INIT), so tests can prove what a migration did to it. Both pieces come
from Debian packages fetched with `apt-get download` (never installed on this
machine); the initramfs is written here as a newc cpio, so no cpio tool is needed.
"""
from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in evdev button virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev \
         virtio_pci virtio_blk; do
  insmod /lib/$m.ko 2>/dev/null
done
# The disk counter: every 0.5 s the next number, this boot's id and the guest's uptime
# go into the first sector of the first disk. A test reading that sector proves that a
# move lost no write (the number keeps rising, the boot id stays) and that two copies
# never ran at once (the boot id never flips back and forth). It goes on from the
# number on the disk, so an offline move or a restart continues the count.
counter() {
  for n in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/vda ] && break; sleep 0.2; done
  [ -b /dev/vda ] || return
  boot=$(cat /proc/sys/kernel/random/boot_id)
  set -- $(dd if=/dev/vda bs=512 count=1 2>/dev/null | tr -d '\000')
  n=0
  if [ "$1" = "mvmtui-counter" ]; then
    case "$2" in ''|*[!0-9]*) n=0 ;; *) n=$2 ;; esac
  fi
  while :; do
    n=$((n + 1))
    read up _ < /proc/uptime         # a builtin: under TCG every fork costs
    printf 'mvmtui-counter %s %s %s\n' "$n" "$boot" "$up" \
      | dd of=/dev/vda bs=512 count=1 conv=sync,notrunc,fsync 2>/dev/null
    sleep 0.5
  done
}
counter &
# The CPU burner: while the disk's second sector says "mvmtui-burn", the guest spins
# (shell arithmetic, one vCPU); Lab.burn_cpu writes it from outside, and the guest
# says on its console when it starts and stops. Read with O_DIRECT, so the guest sees
# what is on the disk now, not its cache; idle, it looks every 5 s (under TCG every
# fork costs, and every lab guest runs this).
burner() {
  while :; do
    if dd if=/dev/vda bs=512 skip=1 count=1 iflag=direct 2>/dev/null | grep -q mvmtui-burn
    then
      echo "mvmtui burn: on" > /dev/console
      while dd if=/dev/vda bs=512 skip=1 count=1 iflag=direct 2>/dev/null | grep -q mvmtui-burn
      do
        i=0; while [ $i -lt 100000 ]; do i=$((i + 1)); done
      done
      echo "mvmtui burn: off" > /dev/console
    else
      sleep 5
    fi
  done
}
burner &
# The power button (ACPI) powers off: what `virsh shutdown` and reboot rely on.
dev=""
for n in 1 2 3 4 5 6 7 8 9 10; do
  for e in /sys/class/input/event*; do
    grep -q "Power Button" "$e/device/name" 2>/dev/null && dev="/dev/input/${e##*/}"
  done
  [ -n "$dev" ] && break
  sleep 0.2
done
# "up" only once the button is found and about to be watched: a press before that
# would be lost, and tests wait for this line before they press it.
if [ -n "$dev" ]; then echo "mvmtui lab guest: up"; else echo "mvmtui lab guest: up (no power button)"; fi
while :; do
  if [ -n "$dev" ]; then
    dd if="$dev" bs=24 count=1 >/dev/null 2>&1 && { echo "power button: off"; poweroff -f; }
  fi
  sleep 1
done
"""
# Modules the initramfs carries (INIT loads them): the power button, and virtio so
# the guest sees its disk.
GUEST_MODULES = {f"{m}.ko" for m in (
    "evdev", "button", "virtio", "virtio_ring", "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev", "virtio_pci", "virtio_blk")}
# Bumped whenever INIT changes: an image built from an older INIT is rebuilt.
INIT_VERSION = "7"


def _cpio_newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """entries: (path, mode, data). Directories have mode 0o040755 and no data."""
    out = io.BytesIO()
    ino = 1
    for name, mode, data in entries + [("TRAILER!!!", 0, b"")]:
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))
        out.write(hdr.encode() + nb)
        out.write(b"\0" * ((4 - (110 + len(nb)) % 4) % 4))
        out.write(data)
        out.write(b"\0" * ((4 - len(data) % 4) % 4))
        ino += 1
    return out.getvalue()


def _kernel_package() -> str:
    out = subprocess.run(["apt-cache", "depends", "linux-image-cloud-amd64"],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Depends: linux-image-"):
            return line.split(":", 1)[1].strip()
    raise RuntimeError("apt-cache cannot resolve linux-image-cloud-amd64 "
                       "(run `apt-get update` first)")


def fetch_debs(cache: Path) -> tuple[Path, Path]:
    """The kernel and busybox-static .debs, downloaded once into cache."""
    cache.mkdir(parents=True, exist_ok=True)
    kernels = sorted(cache.glob("linux-image-*-cloud-amd64_*.deb"))
    boxes = sorted(cache.glob("busybox-static_*.deb"))
    if not kernels or not boxes:
        pkgs = [_kernel_package(), "busybox-static"]
        r = subprocess.run(["apt-get", "download", *pkgs], cwd=cache,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"apt-get download {' '.join(pkgs)} failed: {r.stderr.strip()}")
        kernels = sorted(cache.glob("linux-image-*-cloud-amd64_*.deb"))
        boxes = sorted(cache.glob("busybox-static_*.deb"))
    return kernels[-1], boxes[-1]


def build(dest: Path, cache: Path) -> tuple[Path, Path]:
    """dest/vmlinuz and dest/initrd.gz, built if missing. Raises RuntimeError."""
    kernel, initrd = dest / "vmlinuz", dest / "initrd.gz"
    stamp = dest / "init-version"
    if kernel.exists() and initrd.exists() and stamp.exists() \
            and stamp.read_text().strip() == INIT_VERSION:
        return kernel, initrd
    kdeb, bdeb = fetch_debs(cache)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for deb in (kdeb, bdeb):
            subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        t = Path(tmp)
        vmlinuz = next(t.glob("boot/vmlinuz-*"))
        mods = {m.name: m for m in t.glob("lib/modules/*/kernel/drivers/**/*.ko")
                if m.name in GUEST_MODULES}
        entries = [(d, 0o040755, b"") for d in
                   ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "proc", "sys", "dev", "lib",
                    "etc", "tmp", "root")]
        entries.append(("bin/busybox", 0o100755, (t / "bin/busybox").read_bytes()))
        entries.append(("init", 0o100755, INIT.encode()))
        for name, path in sorted(mods.items()):
            entries.append((f"lib/{name}", 0o100644, path.read_bytes()))
        data = gzip.compress(_cpio_newc(entries), compresslevel=6)
        tmp_initrd = initrd.with_suffix(".tmp")
        tmp_initrd.write_bytes(data)
        shutil.copyfile(vmlinuz, kernel)
        os.replace(tmp_initrd, initrd)
        stamp.write_text(INIT_VERSION + "\n")
    return kernel, initrd
