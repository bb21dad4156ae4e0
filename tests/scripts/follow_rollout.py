#!/usr/bin/env python3
"""Follows a rollout to its end the way an operator's script would, using nothing but
`ringleader status --json`, `ringleader events --json --follow` and exit codes.

Usage: follow_rollout.py RINGLEADER ROLLOUT   (RINGLEADER_URL set in the environment)

Prints one summary line and exits 0 when the rollout completed and everything the
script relies on held; exits 1 with the reason otherwise.
"""
import json
import subprocess
import sys


def fail(why):
    print(f"FAIL: {why}")
    sys.exit(1)


def main():
    ringleader, rollout = sys.argv[1], sys.argv[2]

    # Follow the events until the rollout ends; every line is one JSON object.
    follow = subprocess.run(
        [ringleader, "events", rollout, "--json", "--follow"],
        capture_output=True, text=True, timeout=600,
    )
    if follow.returncode != 0:
        fail(f"events --follow exited {follow.returncode}: {follow.stderr}")
    events = [json.loads(line) for line in follow.stdout.splitlines()]
    if not events:
        fail("no events")
    cursors = [e["cursor"] for e in events]
    if cursors != sorted(cursors) or len(set(cursors)) != len(cursors):
        fail("cursors are not strictly increasing")
    if any(e.get("schema") != "ringleader.event/v1" for e in events):
        fail("an event without schema ringleader.event/v1")
    kinds = [e["type"] for e in events]
    if kinds[-1] != "completed":
        fail(f"the last event is {kinds[-1]}, not completed")
    ring_completes = [e["ring"] for e in events if e["type"] == "ring-complete"]

    # Resuming after the last cursor gives nothing new.
    again = subprocess.run(
        [ringleader, "events", rollout, "--json", "--since", str(cursors[-1] + 1)],
        capture_output=True, text=True, timeout=60,
    )
    if again.returncode != 0 or again.stdout.strip():
        fail(f"resuming after the last cursor printed {again.stdout!r}")

    status = subprocess.run(
        [ringleader, "status", rollout, "--json"],
        capture_output=True, text=True, timeout=60,
    )
    if status.returncode != 0:
        fail(f"status exited {status.returncode}")
    s = json.loads(status.stdout)
    if s["schema"] != "ringleader.status/v1" or s["state"] != "completed" or not s["ended"]:
        fail(f"status says {s['state']}, ended={s['ended']}")
    if [r["name"] for r in s["rings"]] != ring_completes:
        fail(f"rings completed {ring_completes} but status lists {[r['name'] for r in s['rings']]}")
    done = sum(r["done"] for r in s["rings"])
    failed = sum(r["failed"] for r in s["rings"])

    wait = subprocess.run([ringleader, "status", rollout, "--wait"], capture_output=True, timeout=60)
    if wait.returncode != 0:
        fail(f"status --wait exited {wait.returncode} for a completed rollout")

    print(f"ok: {len(events)} events, rings {' '.join(ring_completes)}, {done} done, {failed} failed")


if __name__ == "__main__":
    main()
