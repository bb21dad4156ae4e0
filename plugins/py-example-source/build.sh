#!/usr/bin/env bash
# Builds the Python example patch source as a WebAssembly component with componentize-py
# and writes, into OUT_DIR, what host/ringleader-bundled-plugins/build.rs writes for a
# Rust plugin: `py-example-source.wasm` and a sealed manifest
# `py-example-source.plugin.toml` (this folder's plugin.toml plus `component` and
# `sha256`). The plugin.toml in this folder is the template: it carries no checksum.
# Builds are not bit-for-bit reproducible (componentize-py snapshots the interpreter
# after a pre-initialisation), so every build is sealed anew.
#
# Usage: plugins/py-example-source/build.sh OUT_DIR
#
# Environment:
#   COMPONENTIZE_VENV  venv holding componentize-py (created, with the pinned version,
#                      when missing) [default: /var/cache/ringleader-peers/componentize-venv]
#   RINGLEADER         host binary used to seal the manifest
#                      [default: target/debug/ringleader of this repository, else `ringleader`]
set -euo pipefail

COMPONENTIZE_PY_VERSION="0.25.1"   # pinned: a new version may change the runtime and size
NAME="py-example-source"
WORLD="patch-source"

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
wit="$root/wit/ringleader-plugin@0.1.0"
mkdir -p "$1"
out="$(cd "$1" && pwd)"

venv="${COMPONENTIZE_VENV:-/var/cache/ringleader-peers/componentize-venv}"
cpy="$venv/bin/componentize-py"
if [ ! -x "$cpy" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "componentize-py==$COMPONENTIZE_PY_VERSION"
fi
have="$("$cpy" --version | awk '{print $2}')"
if [ "$have" != "$COMPONENTIZE_PY_VERSION" ]; then
    echo "error: $cpy is componentize-py $have; this build is pinned to $COMPONENTIZE_PY_VERSION" >&2
    echo "       (pip install componentize-py==$COMPONENTIZE_PY_VERSION into $venv)" >&2
    exit 1
fi

ringleader="${RINGLEADER:-}"
if [ -z "$ringleader" ]; then
    if [ -x "$root/target/debug/ringleader" ]; then
        ringleader="$root/target/debug/ringleader"
    else
        ringleader="ringleader"
    fi
fi

# Only app.py goes on the Python path: componentize-py bundles what is on it, and
# this folder also holds the manifest and this script. Staged inside OUT_DIR, removed after.
stage="$(mktemp -d "$out/.stage.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
cp "$here/app.py" "$stage/"
# No VIRTUAL_ENV: componentize-py would add that venv's site-packages to the path.
unset VIRTUAL_ENV

wasm="$NAME.wasm"
(cd "$stage" && "$cpy" --quiet -d "$wit" -w "$WORLD" componentize -p "$stage" app -o "$out/$wasm")

# Same shape as build.rs: top-level keys before the template (whose tables come last),
# then `ringleader plugin seal` fills in the checksum.
manifest="$out/$NAME.plugin.toml"
{
    echo "# Sealed by the build: do not edit; rebuild instead."
    echo "component = \"$wasm\""
    echo "sha256 = \"\""
    cat "$here/plugin.toml"
} > "$manifest"
"$ringleader" plugin seal "$manifest"
