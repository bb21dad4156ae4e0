#!/usr/bin/env bash
# Installs the test peers the integration tests start on 127.0.0.1:
#   openssh-server   the SSH transport's tests start their own sshd (Debian package)
#   openssl          test certificates for the HTTPS peers
#   dpkg-deb, dpkg   building and installing test packages (part of every Debian); dpkg
#                    also judges the deb version order (ringleader-version's oracle tests)
#   python3-rpm      rpm's own version order (rpm.labelCompare) for the system Python,
#                    the judge of the rpm version order (ringleader-version's oracle tests)
#   redfish/         the Redfish BMC emulator: python3-libvirt (Debian) and sushy-tools
#                    (PyPI) in a venv under /var/cache/ringleader-peers (see redfish/NOTES.md)
#   mmdebstrap       the Debian root the apt tests' devices are copies of, built once by
#                    debian-root.sh and cached under /var/cache/ringleader-peers
#   apt-utils, gpg   the apt tests' signed repository (apt-ftparchive, a throwaway key)
# Idempotent; needs root (or sudo) only when something is missing. .ci/run calls it; the
# tests also call it themselves when a peer is missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
sudo=
if [ "$(id -u)" -ne 0 ] && command -v sudo > /dev/null; then
    sudo=sudo
fi
missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v dpkg-deb > /dev/null || missing+=(dpkg-dev)
[ -x /usr/bin/dpkg ] || missing+=(dpkg)
/usr/bin/python3 -c 'import rpm' 2> /dev/null || missing+=(python3-rpm)
command -v openssl > /dev/null || missing+=(openssl)   # test certificates for HTTPS peers
command -v mmdebstrap > /dev/null || missing+=(mmdebstrap)
command -v apt-ftparchive > /dev/null || missing+=(apt-utils)
command -v gpg > /dev/null || missing+=(gpg)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] && [ -z "$sudo" ]; then
        echo "peers: need root to install ${missing[*]}" >&2
        exit 1
    fi
    echo "peers: installing ${missing[*]}" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi
# The Redfish peer: Debian packages as root, the venv as whoever runs this.
$sudo bash "$here/redfish/install.sh" > /dev/null
# The apt tests' Debian root (built once, then reused from the cache).
$sudo "$here/debian-root.sh" > /dev/null
