#!/usr/bin/env bash
# Installs the test peers the integration tests start on 127.0.0.1 (Debian packages):
#   openssh-server   the SSH transport's tests (tests/it/dpkg.rs starts its own sshd)
#   dpkg-deb, dpkg   building and installing test packages (part of every Debian)
# Idempotent; needs root (or sudo) only when something is missing. .ci/run calls it; the
# tests also call it themselves when a peer is missing and they run as root.
set -euo pipefail
missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v dpkg-deb > /dev/null || missing+=(dpkg-dev)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
sudo=
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo > /dev/null || { echo "peers: need root to install ${missing[*]}" >&2; exit 1; }
    sudo=sudo
fi
echo "peers: installing ${missing[*]}" >&2
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
