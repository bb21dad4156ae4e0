#!/usr/bin/env bash
# Install the Redfish BMC peer used by Ringleader's integration tests:
# sushy-tools (PyPI) driving libvirt's built-in test hypervisor (test:///default).
#
#   usage: bash tests/peers/redfish/install.sh [VENV_DIR]
#          (default VENV_DIR: /var/cache/ringleader-peers/redfish-venv)
#
# Idempotent and non-interactive. Needs root only when the Debian packages are
# missing. On success prints exactly one line: "redfish peer venv: VENV_DIR".
# On failure prints the captured apt/pip output to stderr and exits non-zero.
# Verified on Debian 12 (bookworm): python3-libvirt 9.0.0-1, libvirt0 9.0.0-4+deb12u2.
set -euo pipefail

VENV="${1:-/var/cache/ringleader-peers/redfish-venv}"
SUSHY_VERSION="2.2.0"
# Debian packages: the libvirt Python binding (brings libvirt0, whose built-in
# "test" driver needs no daemon) and venv support for Debian's python3.
DEB_PKGS=(python3-libvirt python3-venv)
# Always Debian's interpreter: python3-libvirt is only importable from it
# (a pyenv/other python3 earlier on PATH cannot see /usr/lib/python3/dist-packages).
PY=/usr/bin/python3

export DEBIAN_FRONTEND=noninteractive
LOG="$(mktemp -t ringleader-redfish-install.XXXXXX)"
trap 'rm -f "$LOG"' EXIT
fail() {
    echo "install.sh: $*" >&2
    echo "----- captured output -----" >&2
    cat "$LOG" >&2
    exit 1
}

# 1. Debian packages (skipped entirely when already installed).
missing=()
for p in "${DEB_PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    [[ $(id -u) -eq 0 ]] || fail "need root to apt-get install: ${missing[*]}"
    apt-get update -q >>"$LOG" 2>&1 || fail "apt-get update failed"
    # --no-install-recommends: python3-libvirt recommends libvirt-daemon, which
    # drags in ~200 packages (qemu-system, xen, ...) that the test driver does not need.
    # --no-remove: never let this script remove packages the machine already has.
    apt-get install -y -q --no-install-recommends --no-remove "${missing[@]}" >>"$LOG" 2>&1 \
        || fail "apt-get install ${missing[*]} failed"
fi
"$PY" -c 'import libvirt' >>"$LOG" 2>&1 || fail "$PY cannot import libvirt"

# 2. The venv (sees the system libvirt binding through --system-site-packages).
venv_ok() {
    [[ -x "$VENV/bin/python" ]] || return 1
    "$VENV/bin/python" - "$SUSHY_VERSION" >>"$LOG" 2>&1 <<'PYEOF'
import sys
from importlib.metadata import version
import libvirt, sushy_tools.emulator.main  # noqa: F401
sys.exit(0 if version("sushy-tools") == sys.argv[1] else 1)
PYEOF
}
if ! venv_ok; then
    mkdir -p "$(dirname "$VENV")" >>"$LOG" 2>&1 || fail "cannot create $(dirname "$VENV")"
    "$PY" -m venv --system-site-packages "$VENV" >>"$LOG" 2>&1 || fail "venv creation failed"
    # Exact versions that were verified together (see NOTES.md). The constraints
    # also stop pip from settling for whatever Debian's python3-* packages hold.
    CONSTRAINTS="$(mktemp -t ringleader-redfish-constraints.XXXXXX)"
    trap 'rm -f "$LOG" "$CONSTRAINTS"' EXIT
    cat >"$CONSTRAINTS" <<'PINS'
bcrypt==5.0.0
blinker==1.9.0
certifi==2026.10.19.post1
charset-normalizer==3.5.3
click==8.5.1
Flask==3.1.3
idna==3.20
itsdangerous==2.2.0
Jinja2==3.1.6
MarkupSafe==3.0.4
pbr==7.1.3
requests==2.34.2
tenacity==9.2.1
urllib3==2.8.0
WebOb==1.8.11
Werkzeug==3.1.9
PINS
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q \
        -c "$CONSTRAINTS" "sushy-tools==$SUSHY_VERSION" >>"$LOG" 2>&1 \
        || fail "pip install sushy-tools==$SUSHY_VERSION failed"
    venv_ok || fail "venv at $VENV does not import libvirt + sushy-tools $SUSHY_VERSION"
fi

echo "redfish peer venv: $VENV"
