#!/usr/bin/env bash
# A fleet scan through the daemon: `ringleader fleet scan --inventory` of DEVICES
# simulated devices (each read by the simulated installer's `scan`, the registry
# written and flushed per device), timed end to end, with the daemon's peak resident
# memory (VmHWM) before and after, and the time of `fleet list --json` on the result.
#
# Usage: benches/fleet.sh      (DEVICES=10000; CONCURRENCY=16 is the [scan] default)
set -euo pipefail
cd "$(dirname "$0")/.."
devices=${DEVICES:-10000}
concurrency=${CONCURRENCY:-16}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -p ringleader --bin ringleader >&2
bin=$target/release/ringleader
work=$(mktemp -d)
daemon=
trap '[ -n "$daemon" ] && kill "$daemon" 2>/dev/null; rm -rf "$work"' EXIT

python3 - "$devices" > "$work/fleet.toml" <<'PY'
import sys
n = int(sys.argv[1])
for i in range(n):
    drift = f'facts = {{ "sim.drift.bios" = "2.19.1" }}\n' if i % 10 == 0 else ""
    print(f'[[devices]]\nid = "srv-{i:05}"\ntags = ["{"lab" if i < 10 else "fleet"}"]\n'
          f'components = {{ bmc-firmware = "7.0.0", bios = "2.10.0", openssl = "3.0.11" }}\n{drift}')
PY
printf '[scan]\nconcurrency = %s\n' "$concurrency" > "$work/ringleader.toml"
"$bin" serve --data "$work/data" --listen 127.0.0.1:0 --config "$work/ringleader.toml" 2> "$work/serve.log" &
daemon=$!
for _ in $(seq 1 100); do
    grep -q "listening on" "$work/serve.log" 2>/dev/null && break
    sleep 0.1
done
export RINGLEADER_URL RINGLEADER_TOKEN
RINGLEADER_URL=$(sed -n 's/.*listening on //p' "$work/serve.log" | head -1)
RINGLEADER_TOKEN=$(cat "$work/data/api-token")
hwm() { awk '/VmHWM/ { print $2 / 1024 }' "/proc/$daemon/status"; }
echo "fleet scan: $devices simulated devices, concurrency $concurrency"
echo "daemon peak memory before: $(hwm) MiB"
begin=$(date +%s.%N)
"$bin" fleet scan --inventory "$work/fleet.toml" --json > "$work/scan.json" || true
end=$(date +%s.%N)
python3 - "$work/scan.json" "$begin" "$end" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
wall = float(sys.argv[3]) - float(sys.argv[2])
print(f"scan: {s['scanned']} devices, {s['ok']} ok, {s['failed']} failed, {wall:.1f} s wall "
      f"({s['scanned'] / wall:.0f} devices/s; the daemon says {s['duration_ms']} ms)")
PY
echo "daemon peak memory after: $(hwm) MiB"
begin=$(date +%s.%N)
"$bin" fleet list --json > "$work/list.json"
end=$(date +%s.%N)
python3 -c "print(f'fleet list --json: {$end - $begin:.2f} s, {$(wc -c < "$work/list.json") / 1e6:.1f} MB')"
du -sh "$work/data/fleet" | awk '{ print "registry on disk: " $1 }'
# The registry's compliance, whole process (the CLI asks, the daemon computes against
# the simulated vendor's catalog and compresses, the CLI unpacks and prints): first
# computed (with the catalog's discovery), then answered again from the daemon's last.
for run in computed reused; do
    begin=$(date +%s.%N)
    "$bin" compliance --json > "$work/compliance.json"
    end=$(date +%s.%N)
    python3 -c "print(f'compliance --json ($run): {$end - $begin:.2f} s, {$(wc -c < "$work/compliance.json") / 1e6:.1f} MB')"
done
echo "daemon peak memory at the end: $(hwm) MiB"
