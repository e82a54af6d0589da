#!/usr/bin/env python3
"""Object-store load for bench-node's [generator]: each user PUTs an object, GETs it back and
checks it, over and over, until SIGTERM. Python's standard library only.

bench-node runs it once per cycle with BENCH_USERS users (threads) against BENCH_URL (the
built-in target: `bench-node target` serves /objects/KEY) and reads one JSON line per
operation from stdout:

    {"step": "put", "ms": 1.8, "ok": true, "bytes": 1024}
    {"step": "get", "ms": 3.1, "error": "HTTP 503", "kind": "status"}   (a failure)
    {"step": "put", "ok": false, "error": "refused", "kind": "connect"} (no answer: an error)
"""

import argparse
import http.client
import json
import os
import signal
import sys
import threading
import time
import urllib.parse

UNITS = {"": 1, "b": 1, "kib": 1024, "mib": 1024**2, "kb": 1000, "mb": 1000**2}

out_lock = threading.Lock()
stop = threading.Event()


def size(text):
    """`1MiB`, `4KiB`, `100` -> bytes."""
    digits = text.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    unit = text[len(digits):].lower()
    if not digits or unit not in UNITS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 1MiB, 4KiB, 100)")
    return int(digits) * UNITS[unit]


def report(**op):
    line = json.dumps(op, separators=(",", ":"))
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def kind_of(error):
    if isinstance(error, ConnectionRefusedError):
        return "connect"
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError)):
        return "reset"
    if isinstance(error, http.client.HTTPException):
        return "protocol"
    return "other"


class User:
    def __init__(self, url, number, body):
        self.url = url
        self.prefix = url.path.rstrip("/")
        self.number = number
        self.body = body
        self.conn = None

    def connection(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.url.hostname, self.url.port or 80, timeout=30)
        return self.conn

    def request(self, step, method, path, body=None):
        """One operation, reported; the answer's body, or None when it failed."""
        started = time.perf_counter()
        try:
            conn = self.connection()
            conn.request(method, self.prefix + path, body=body)
            answer = conn.getresponse()
            data = answer.read()
        except (OSError, http.client.HTTPException) as e:
            self.conn = None
            report(step=step, ok=False, error=f"{type(e).__name__}: {e}", kind=kind_of(e))
            return None
        ms = (time.perf_counter() - started) * 1000
        moved = len(data) + (len(body) if body else 0)
        if answer.status >= 300:
            report(step=step, ms=ms, bytes=moved, error=f"HTTP {answer.status}", kind="status")
            return None
        return ms, moved, data

    def run(self):
        node = os.environ.get("BENCH_NODE", "0")
        i = 0
        while not stop.is_set():
            key = f"/objects/n{node}-u{self.number}-{i % 100}"
            put = self.request("put", "PUT", key, self.body)
            if put:
                report(step="put", ms=put[0], ok=True, bytes=put[1])
                got = self.request("get", "GET", key)
                if got and got[2] != self.body:
                    report(step="get", ms=got[0], bytes=got[1], error="body differs from the PUT", kind="check")
                elif got:
                    report(step="get", ms=got[0], ok=True, bytes=got[1])
            i += 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=size, default=size("4KiB"), help="object size (default 4KiB)")
    args = parser.parse_args()
    url = urllib.parse.urlsplit(os.environ.get("BENCH_URL", "http://127.0.0.1:8099/"))
    users = int(os.environ.get("BENCH_USERS", "1"))
    body = os.urandom(args.size)
    # SIGTERM: finish the operation in flight, report it, and end.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threads = [threading.Thread(target=User(url, n, body).run, daemon=True) for n in range(users)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(timeout=0.1)
    print(f"put_objects: {users} users stopped", file=sys.stderr)


if __name__ == "__main__":
    main()
