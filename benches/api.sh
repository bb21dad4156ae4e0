#!/usr/bin/env bash
# The daemon's API under load.
#
# Starts `ringleader serve` on 127.0.0.1, runs a simulated rollout of DEVICES devices
# (virtual time, benches/policies/four-rings-unattended.toml) once with no readers, then
# the same rollout again while READERS concurrent clients read its status and follow
# its events, and COMPLIANCE_READERS more read `GET /v1/compliance` over a fleet
# registry of DEVICES scanned simulated devices, accepting gzip as a browser or
# `curl --compressed` does (COMPLIANCE_ENCODING=identity: not), (benches/bin/api_load.rs). Reports the
# request rate, latency percentiles and errors per kind of reader, checks that the
# rollout's virtual duration and outcome are unchanged by the load, and times one
# device's history on the finished rollout.
#
# Usage: benches/api.sh      (DEVICES=10000 READERS=32 COMPLIANCE_READERS=4 COMPLIANCE_ENCODING=gzip)
set -euo pipefail
cd "$(dirname "$0")/.."
devices=${DEVICES:-10000}
readers=${READERS:-32}
compliance_readers=${COMPLIANCE_READERS:-4}
compliance_encoding=${COMPLIANCE_ENCODING:-gzip}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -p ringleader -p ringleader-benches --bin ringleader --bin api-load >&2
bin=$target/release/ringleader
load=$target/release/api-load
work=$(mktemp -d)
daemon=
trap '[ -n "$daemon" ] && kill "$daemon" 2>/dev/null; rm -rf "$work"' EXIT

# One daemon per run, each with its own data directory: rollouts on one daemon share its
# simulated devices, so a second rollout would find the first one's installs.
serve() {
    [ -n "$daemon" ] && kill "$daemon" && wait "$daemon" 2>/dev/null || true
    "$bin" serve --data "$work/$1" --listen 127.0.0.1:0 2> "$work/$1.log" &
    daemon=$!
    for _ in $(seq 1 100); do
        grep -q "listening on" "$work/$1.log" 2>/dev/null && break
        sleep 0.1
    done
    url=$(sed -n 's/.*listening on //p' "$work/$1.log" | head -1)
    export RINGLEADER_URL=$url RINGLEADER_TOKEN
    RINGLEADER_TOKEN=$(cat "$work/$1/api-token")
}

# The fleet registry compliance is read from: DEVICES scanned simulated servers (one in
# ten with a BIOS updated by hand), the simulated vendor's catalog applying to them.
python3 - "$devices" > "$work/fleet.toml" <<'PY'
import sys
n = int(sys.argv[1])
for i in range(n):
    drift = f'facts = {{ "sim.drift.bios" = "2.19.1" }}\n' if i % 10 == 0 else ""
    print(f'[[devices]]\nid = "reg-{i:05}"\ntags = ["{"lab" if i < 10 else "fleet"}"]\n'
          f'components = {{ bmc-firmware = "7.0.0", bios = "2.10.0", openssl = "3.0.11" }}\n{drift}')
PY
registry() {
    "$bin" fleet scan --inventory "$work/fleet.toml" --json > /dev/null
    # Once, so the catalog is discovered before the clock starts.
    "$bin" compliance --json > "$work/compliance.json"
}

start() {
    "$bin" rollout start --policy benches/policies/four-rings-unattended.toml \
        --simulate "$devices" --virtual-time --start 2026-11-02T08:00:00Z 2>/dev/null
}
summary() {
    "$bin" status "$1" --json | python3 -c '
import json, sys, datetime
s = json.load(sys.stdin)
t = lambda v: datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))
print(s["state"], int((t(s["time"]) - t(s["started"])).total_seconds()),
      sum(r["done"] for r in s["rings"]), sum(r["failed"] for r in s["rings"]))'
}

echo "API load: $devices-device simulated rollout (virtual time), $readers readers of status and events"
serve alone
registry
alone=$(start)
begin=$(date +%s.%N)
"$bin" status "$alone" --wait > /dev/null || true
end=$(date +%s.%N)
read -r state1 virtual1 done1 failed1 <<< "$(summary "$alone")"
python3 -c "print(f'without readers: {$end - $begin:.1f} s real, state $state1, virtual {$virtual1} s, done $done1, failed $failed1')"

# One device's history on the finished rollout (read through the log's index by job).
device=$("$bin" devices "$alone" --json | python3 -c 'import json, sys; d = json.load(sys.stdin)["devices"]; print(d[len(d) // 2]["id"])')
python3 - "$url" "$alone" "$device" <<'PY'
import json, sys, time, urllib.request
url, rollout, device = sys.argv[1:]
times = []
for _ in range(50):
    began = time.perf_counter()
    body = urllib.request.urlopen(f"{url}/v1/rollouts/{rollout}/devices/{device}").read()
    times.append(time.perf_counter() - began)
times.sort()
history = len(json.loads(body)["history"])
print(f"one device's history ({history} events): p50 {times[25] * 1000:.2f} ms, max {times[-1] * 1000:.2f} ms over 50 requests")
PY

serve loaded
registry
python3 - "$work/compliance.json" "$url" "$RINGLEADER_TOKEN" <<'PY'
import json, os, sys, urllib.request
c = json.load(open(sys.argv[1]))
size = os.path.getsize(sys.argv[1]) / 1e6
request = urllib.request.Request(f"{sys.argv[2]}/v1/compliance", headers={
    "Accept-Encoding": "gzip", "Authorization": f"Bearer {sys.argv[3]}"})
gzip = len(urllib.request.urlopen(request).read()) / 1e6
print(f"compliance: {len(c['devices'])} devices, {len(c['patches'])} patches, "
      f"{size:.1f} MB of JSON ({gzip:.2f} MB gzip)")
PY
loaded=$(start)
"$load" "$url" "$loaded" "$readers" "$compliance_readers" "$compliance_encoding"
read -r state2 virtual2 done2 failed2 <<< "$(summary "$loaded")"
echo "with readers:    state $state2, virtual $virtual2 s, done $done2, failed $failed2"
if [ "$virtual1 $done1 $failed1 $state1" = "$virtual2 $done2 $failed2 $state2" ]; then
    echo "the rollout's virtual duration and outcome are unchanged under load"
else
    echo "MISMATCH: the load changed the rollout"
    exit 1
fi
