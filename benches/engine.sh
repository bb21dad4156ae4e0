#!/usr/bin/env bash
# Whole-process engine benchmark.
#
# 1. `ringleader demo` through four rings with durable state (--data), at several fleet
#    sizes: wall time, peak RSS, and time per device-step (install + verify through the
#    sandboxed plugin, write-ahead log included).
# 2. Side by side: Ansible (ansible-core from PyPI, installed here into a venv) rolling a
#    trivial `set_fact` task over a local-connection inventory of the same size with
#    serial ["1%", "10%", "100%"].
#
# 3. The ratio, per device, at each size both ran.
#
# Usage: benches/engine.sh    (SIZES="1000 10000 100000"; ANSIBLE_SIZES defaults to SIZES)
# Ansible at 100,000 hosts takes a long while (about 15 min here) and several GiB.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${SIZES:-"1000 10000 100000"}
ansible_sizes=${ANSIBLE_SIZES:-$sizes}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -p ringleader >&2
bin=$target/release/ringleader
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "ringleader demo, 4 rings, durable state (benches/policies/four-rings.toml)"
printf "%10s %10s %10s %9s %9s %10s %9s %11s\n" devices state steps seconds "plugin s" "peak MiB" "us/step" "engine us"
for n in $sizes; do
    /usr/bin/time -f "%e %M" -o "$work/time$n" "$bin" demo --devices "$n" --seed 1 \
        --policy benches/policies/four-rings.toml --data "$work/data$n" --json \
        > "$work/out$n.json" || true
    python3 - "$n" "$work/out$n.json" "$work/time$n" <<'PY'
import json, sys
n, out, timing = sys.argv[1], json.load(open(sys.argv[2])), open(sys.argv[3]).read().split()
seconds, rss_kib = float(timing[-2]), int(timing[-1])
steps = max(out["install_calls"], 1)
plugin = out.get("plugin_call_ms", 0) / 1000
# Engine overhead: everything but the time inside plugin calls (process start,
# discovery, planning, the core, the write-ahead log and its flushes).
engine_us = (seconds - plugin) * 1e6 / steps
print(f"{n:>10} {out['final_state']:>10} {steps:>10} {seconds:>9.2f} {plugin:>9.2f} {rss_kib/1024:>10.0f} {seconds*1e6/steps:>9.1f} {engine_us:>11.1f}")
open(sys.argv[3] + ".per-device", "w").write(str(seconds / int(n)))
PY
done

# Reboots: the same demo with reboots on (four-rings.toml: a device reboots once after
# its last step when a patch needs it, its simulated POST 2-12 minutes of virtual time)
# and off (four-rings-no-reboots.toml: reboot = "never").
reboot_sizes=${REBOOT_SIZES:-100000}
echo
echo "reboots on and off (REBOOT_SIZES=\"$reboot_sizes\")"
printf "%10s %12s %10s %9s %10s %9s\n" devices policy reboots seconds "peak MiB" state
for n in $reboot_sizes; do
    for policy in four-rings four-rings-no-reboots; do
        /usr/bin/time -f "%e %M" -o "$work/rtime$n$policy" "$bin" demo --devices "$n" --seed 1 \
            --policy "benches/policies/$policy.toml" --data "$work/rdata$n$policy" --json \
            > "$work/rout$n$policy.json" || true
        python3 - "$n" "$policy" "$work/rout$n$policy.json" "$work/rtime$n$policy" <<'PY'
import json, sys
n, policy, out, timing = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3])), open(sys.argv[4]).read().split()
seconds, rss_kib = float(timing[-2]), int(timing[-1])
reboots = sum(r.get("reboots", 0) for r in out.get("rings", []))
print(f"{n:>10} {policy[11:] or 'on':>12} {reboots:>10} {seconds:>9.2f} {rss_kib/1024:>10.0f} {out['final_state']:>9}")
PY
        rm -rf "$work/rdata$n$policy"
    done
done

echo
echo "ansible-core, set_fact over local hosts, serial [1%, 10%, 100%]"
python3 -m venv "$work/venv" >&2
"$work/venv/bin/pip" install --quiet ansible-core >&2
printf "%10s %10s %14s\n" hosts seconds "ms/host"
for n in $ansible_sizes; do
    {
        echo "[fleet]"
        for i in $(seq 1 "$n"); do echo "host$i ansible_connection=local ansible_python_interpreter=$work/venv/bin/python"; done
    } > "$work/hosts$n"
    cat > "$work/play.yml" <<'YML'
- hosts: fleet
  gather_facts: false
  serial: ["1%", "10%", "100%"]
  tasks:
    - set_fact:
        patched: true
YML
    start=$(date +%s.%N)
    ANSIBLE_HOST_KEY_CHECKING=False "$work/venv/bin/ansible-playbook" -i "$work/hosts$n" "$work/play.yml" > "$work/ansible$n.log"
    end=$(date +%s.%N)
    python3 -c "n=$n; s=$end-$start; print(f'{n:>10} {s:>10.2f} {s*1000/n:>14.1f}')"
    python3 -c "print($end-$start)" > "$work/ansible$n.seconds"
done

echo
echo "per device: ansible / ringleader (ringleader's whole rollout, 4 rings, install + verify, durable)"
for n in $ansible_sizes; do
    if [ -f "$work/time$n.per-device" ] && [ -f "$work/ansible$n.seconds" ]; then
        python3 -c "r=float(open('$work/time$n.per-device').read()); a=float(open('$work/ansible$n.seconds').read())/$n; print(f'{$n:>10} {a/r:>8.1f}x')"
    fi
done
