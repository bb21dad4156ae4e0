#!/usr/bin/env bash
# A simulated month of continuous patching: `ringleader demo --continuous --days 30`
# over DEVICES simulated devices (the weekly schedule, its approval rules, the sources
# polled every POLL, a critical fix expedited in mid-month), as one process: wall time,
# peak resident memory, and time to patch per severity from its JSON.
#
# Usage: benches/month.sh      (DEVICES=10000 POLL=1h SEED=1)
set -euo pipefail
cd "$(dirname "$0")/.."
devices=${DEVICES:-10000}
poll=${POLL:-1h}
seed=${SEED:-1}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -p ringleader --bin ringleader >&2
bin=$target/release/ringleader
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

/usr/bin/time -f "%e %M" -o "$work/time" "$bin" demo --continuous --days 30 \
    --devices "$devices" --seed "$seed" --poll "$poll" --json > "$work/month.json"
read -r wall kib < "$work/time"
echo "demo --continuous --days 30: $devices devices, polls every $poll, seed $seed"
echo "  wall ${wall} s, peak RSS $((kib / 1024)) MiB"
python3 - "$work/month.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"  {d['polls']} polls, {len(d['runs'])} runs, {len(d['rollouts'])} rollouts")
def span(s):
    return "-" if s is None else (f"{s / 3600:.1f}h" if s < 86400 else f"{s / 86400:.1f}d")
def share(v):
    return "-" if v is None else f"{v * 100:.1f}%"
print(f"  {'severity':<9} {'pairs':>6} {'installed':>9} {'median':>7} {'p95':>7} {'7d':>7} {'14d':>7} {'30d':>7}")
for t in d["time_to_patch"]:
    print(f"  {t['severity']:<9} {t['pairs']:>6} {t['installed']:>9} {span(t['median_seconds']):>7} "
          f"{span(t['p95_seconds']):>7} {share(t['within_7_days']):>7} {share(t['within_14_days']):>7} "
          f"{share(t['within_30_days']):>7}")
PY
