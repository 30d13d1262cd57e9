#!/usr/bin/env bash
# Installs the Debian packages the test suite and the demo need, only when something is missing.
# Idempotent: a second run with everything present does nothing and asks no registry.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
if [ "${1:-}" = venv ]; then
  # Only what `python3 -m venv` needs, before the virtualenv exists.
  if [ -x /usr/bin/python3.11 ] && ! dpkg -s python3.11-venv >/dev/null 2>&1; then
    need+=(python3.11-venv)
  fi
fi
if [ "${1:-}" != venv ]; then
have redis-server      || need+=(redis-server)
have redis-cli         || need+=(redis-tools)
have freeDiameterd     || need+=(freediameterd freediameter-extensions)
[ -e /usr/lib/freeDiameter/dict_dcca_3gpp.fdx ] || need+=(freediameter-extensions)
have tshark            || need+=(tshark)
have ip                || need+=(iproute2)
# Kernel SCTP tests run in a throwaway QEMU guest (this host kernel has no SCTP).
have qemu-system-x86_64 || need+=(qemu-system-x86)
have busybox           || need+=(busybox-static)
ls /boot/vmlinuz-*-amd64 >/dev/null 2>&1 || need+=(linux-image-amd64)
fi

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "ensure-system-deps: installing ${need[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-system-deps: need root to apt-get install ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Do not let package scripts start services (redis-server) on this machine.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
echo "ensure-system-deps: done"
