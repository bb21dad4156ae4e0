#!/usr/bin/env bash
# Builds the Debian root the apt tests' devices are copies of: Debian 12 (bookworm),
# mmdebstrap's `apt` variant (the Essential packages and apt, with gpgv: about 80
# packages), merged /usr, without manuals, docs and translations; as a tarball at
#   /var/cache/ringleader-peers/debian-bookworm-apt.tar      (~72 MB, ~55 s to build)
# from the Debian mirror this machine's apt already uses (/etc/apt/sources.list and
# /etc/apt/sources.list.d/*: the entry for suite bookworm; RINGLEADER_DEBIAN_MIRROR
# overrides it).
#
#   usage: tests/peers/debian-root.sh        (prints the tarball's path)
#
# Built once and kept: a tarball that is there and reads back whole (`tar -t`) is used
# as it is; a missing or unreadable one is built again. Builds run under a lock
# (flock on debian-bookworm-apt.lock), so parallel tests wait for one build instead of
# racing, and the tarball appears whole or not at all (written beside it, then
# renamed). Needs root and mmdebstrap (tests/peers/install.sh installs it).
set -euo pipefail

cache=/var/cache/ringleader-peers
tarball="$cache/debian-bookworm-apt.tar"
suite=bookworm

mkdir -p "$cache"
exec 9> "$cache/debian-bookworm-apt.lock"
flock 9

if [ -s "$tarball" ] && tar -tf "$tarball" > /dev/null 2>&1; then
    echo "$tarball"
    exit 0
fi

# The mirror of the entry for $suite, from one-line (`deb [opts] URI SUITE ...`) and
# deb822 (`URIs:` / `Suites:`) source files.
mirror_of_sources() {
    local file
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$file" ] || continue
        awk -v suite="$suite" '
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite) { print $i; exit }
            }' "$file"
    done
    for file in /etc/apt/sources.list.d/*.sources; do
        [ -r "$file" ] || continue
        awk -v suite="$suite" '
            function flush() {
                n = split(suites, s, " ")
                for (k = 1; k <= n; k++) if (s[k] == suite && uris != "") { split(uris, u, " "); print u[1]; exit }
                uris = ""; suites = ""
            }
            /^[ \t]*$/ { flush(); next }
            tolower($1) == "uris:" { $1 = ""; uris = $0 }
            tolower($1) == "suites:" { $1 = ""; suites = $0 }
            END { flush() }' "$file"
    done
}
mirror="${RINGLEADER_DEBIAN_MIRROR:-$(mirror_of_sources | head -1)}"
if [ -z "$mirror" ]; then
    echo "debian-root.sh: no apt source for suite $suite in /etc/apt/sources.list*; set RINGLEADER_DEBIAN_MIRROR to a Debian mirror's URL" >&2
    exit 1
fi
if ! command -v mmdebstrap > /dev/null; then
    echo "debian-root.sh: mmdebstrap is missing: run tests/peers/install.sh as root" >&2
    exit 1
fi

started=$(date +%s)
partial="$tarball.partial"
rm -f "$partial"
log="$(mktemp -t ringleader-debian-root.XXXXXX)"
trap 'rm -f "$log" "$partial"' EXIT
if ! mmdebstrap --variant=apt --mode=root --format=tar \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    "$suite" "$partial" "$mirror" > "$log" 2>&1; then
    echo "debian-root.sh: mmdebstrap $suite from $mirror failed:" >&2
    tail -20 "$log" >&2
    exit 1
fi
mv "$partial" "$tarball"
echo "debian-root.sh: built $tarball ($(($(stat -c %s "$tarball") / 1000000)) MB) in $(($(date +%s) - started)) s from $mirror" >&2
echo "$tarball"
