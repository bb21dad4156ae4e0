#!/usr/bin/env python3
"""A webhook receiver for Ringleader's notifications (docs/notifications.md).

It checks each POST's `Ringleader-Signature` header (`sha256=` and the hex
HMAC-SHA256 of the body's bytes under the webhook's secret), answers 401 to a body
whose signature is wrong or missing, ignores a notification whose `id` it has seen
(a retry that crossed its answer), and appends each new one to a file as one JSON
line. Only the standard library.

    python3 webhook-receiver.py --port 8765 --secret-file ops.secret --out seen.jsonl

The daemon's side, in the operator config:

    [webhooks.ops]
    url = "http://127.0.0.1:8765/ringleader"
    secret_file = "ops.secret"
    events = ["awaiting-approval", "halted", "completed", "device-failed"]

`--fail-first N` answers 503 to the first N valid requests (to watch the retries).
"""

import argparse
import hashlib
import hmac
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret-file", required=True)
    parser.add_argument("--out", required=True, help="file each new notification is appended to")
    parser.add_argument("--fail-first", type=int, default=0)
    args = parser.parse_args()
    with open(args.secret_file, "rb") as f:
        # As the daemon reads it: the file's bytes, trailing newlines removed.
        secret = f.read().rstrip(b"\r\n")
    seen = set()
    state = {"failures_left": args.fail_first}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self.answer(413, "too large")
            body = self.rfile.read(length)
            expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
            given = self.headers.get("Ringleader-Signature", "")
            if not hmac.compare_digest(expected, given):
                return self.answer(401, "bad signature")
            if state["failures_left"] > 0:
                state["failures_left"] -= 1
                return self.answer(503, "not now")
            notification = json.loads(body)
            if notification.get("schema") != "ringleader.notification/v1":
                return self.answer(400, "not a ringleader.notification/v1")
            if notification["id"] not in seen:
                seen.add(notification["id"])
                with open(args.out, "a") as out:
                    out.write(json.dumps(notification, sort_keys=True) + "\n")
            self.answer(200, "ok")

        def answer(self, code, text):
            data = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):
            sys.stderr.write("receiver: " + (format % args) + "\n")

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    # Sequential deliveries are what the daemon sends; one thread each is plenty.
    print(f"listening on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
