#!/usr/bin/env bash
# Idempotent set-up on Debian 12, as root: Debian packages, the venv, the lab's
# guest image. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS="libvirt-daemon-system libvirt-clients libvirt-dev pkg-config qemu-system-x86
qemu-utils openssh-server openssh-client iproute2 util-linux procps python3 python3-venv
python3-dev gcc ceph-mon ceph-osd ceph-mgr ceph-common qemu-block-extra
libvirt-daemon-driver-storage-rbd"

if [ "$(id -u)" != 0 ]; then
  echo "setup: run as root (it installs Debian packages; the lab needs namespaces)" >&2
  exit 1
fi

missing=""
for p in $PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
apt_updated=""
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing"
  apt-get update -q
  apt_updated=1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

# The venv; reinstalled only when pyproject.toml changed.
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.mvmtui-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  echo "$want" > "$stamp"
fi

# Byte-compile the (editable) sources, as pip does for installed packages: start-up
# then reads .pyc files even where PYTHONDONTWRITEBYTECODE is set. Rewrites only
# what changed.
.venv/bin/python -m compileall -q mvmtui >/dev/null

# The lab's guest (Debian's cloud kernel + busybox), fetched once with apt-get download.
if ! .venv/bin/mvmtui lab prepare >/dev/null 2>&1; then
  [ -n "$apt_updated" ] || apt-get update -q
  .venv/bin/mvmtui lab prepare
fi
echo "setup: ready"
