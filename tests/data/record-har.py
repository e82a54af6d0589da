"""Records a HAR of a journey in headless Chromium over the DevTools protocol.

usage: record-har.py CHROMIUM URL OUT.har PROFILE_DIR

Opens URL, waits until its script set the title to "ready" (its fetch and XHR answered), submits
its first form, waits until the network is idle after the next page, and writes what the
Network domain reported as HAR 1.2 (Chromium cannot write a HAR from its command line). Only
the standard library and python3-websockets (Debian's). Every wait is bounded.
"""

import asyncio
import base64
import datetime
import json
import re
import subprocess
import sys
import time

import websockets

DEADLINE_S = 30


class Browser:
    """One DevTools connection: commands by id, events kept in order."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.waiting = {}
        self.events = []
        self.reader = asyncio.ensure_future(self.read())

    async def read(self):
        async for text in self.ws:
            message = json.loads(text)
            if "id" in message and message["id"] in self.waiting:
                self.waiting.pop(message["id"]).set_result(message)
            elif "method" in message:
                self.events.append(message)

    async def send(self, method, params=None, session=None):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        done = asyncio.get_event_loop().create_future()
        self.waiting[self.next_id] = done
        await self.ws.send(json.dumps(message))
        reply = await asyncio.wait_for(done, DEADLINE_S)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})


def devtools_url(chromium):
    """The browser's WebSocket URL, from the line Chromium prints on stderr."""
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        line = chromium.stderr.readline().decode(errors="replace")
        if not line:
            break
        found = re.search(r"DevTools listening on (ws://\S+)", line)
        if found:
            return found.group(1)
    raise RuntimeError("chromium did not say where DevTools listens")


async def until(check, what):
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def network(events, session):
    return [e for e in events if e.get("sessionId") == session and e["method"].startswith("Network.")]


def idle(events, session):
    """True when every request seen has finished or failed."""
    pending = set()
    for e in network(events, session):
        rid = e["params"].get("requestId")
        if e["method"] == "Network.requestWillBeSent":
            pending.add(rid)
        elif e["method"] in ("Network.loadingFinished", "Network.loadingFailed"):
            pending.discard(rid)
    return not pending


def iso(wall):
    t = datetime.datetime.fromtimestamp(wall, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def pairs(headers):
    return [{"name": k, "value": v} for k, v in headers.items()]


def response_of(r, redirect_url=""):
    return {
        "status": r.get("status", 0),
        "statusText": r.get("statusText", ""),
        "httpVersion": r.get("protocol", "http/1.1").upper(),
        "headers": pairs(r.get("headers", {})),
        "cookies": [],
        "redirectURL": redirect_url,
        "content": {"size": 0, "mimeType": r.get("mimeType", "")},
        "headersSize": -1,
        "bodySize": -1,
    }


def har(events, session):
    """HAR entries from the Network events: one per request and per redirect hop."""
    entries, open_ = [], {}

    def close(rid, ended):
        entry, sent = open_.pop(rid)
        entry["time"] = max(0.0, (ended - sent) * 1000.0)
        entries.append(entry)

    for e in network(events, session):
        p, m = e["params"], e["method"]
        rid = p.get("requestId")
        if m == "Network.requestWillBeSent":
            if "redirectResponse" in p and rid in open_:
                open_[rid][0]["response"] = response_of(p["redirectResponse"], p["request"]["url"])
                close(rid, p["timestamp"])
            r = p["request"]
            request = {
                "method": r["method"],
                "url": r["url"] + r.get("urlFragment", ""),
                "httpVersion": "HTTP/1.1",
                "headers": pairs(r.get("headers", {})),
                "queryString": [],
                "cookies": [],
                "headersSize": -1,
                "bodySize": -1,
            }
            body = r.get("postData")
            if body is None and r.get("postDataEntries"):
                body = b"".join(base64.b64decode(x.get("bytes", "")) for x in r["postDataEntries"]).decode()
            if body is not None:
                mime = next((v for k, v in r.get("headers", {}).items() if k.lower() == "content-type"), "")
                request["postData"] = {"mimeType": mime, "text": body}
            entry = {
                "startedDateTime": iso(p["wallTime"]),
                "time": 0,
                "_resourceType": p.get("type", "Other").lower(),
                "request": request,
                "response": response_of({}),
                "cache": {},
                "timings": {"send": 0, "wait": 0, "receive": 0},
            }
            open_[rid] = (entry, p["timestamp"])
        elif m == "Network.responseReceived" and rid in open_:
            open_[rid][0]["response"] = response_of(p["response"])
        elif m in ("Network.loadingFinished", "Network.loadingFailed") and rid in open_:
            close(rid, p["timestamp"])
    entries.sort(key=lambda x: x["startedDateTime"])
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "bench-master tests/data/record-har.py", "version": "1"},
            "pages": [],
            "entries": entries,
        }
    }


async def record(ws_url, url):
    async with websockets.connect(ws_url, max_size=None) as ws:
        b = Browser(ws)
        target = await b.send("Target.createTarget", {"url": "about:blank"})
        attached = await b.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        s = attached["sessionId"]
        await b.send("Network.enable", session=s)
        await b.send("Page.enable", session=s)
        await b.send("Page.navigate", {"url": url}, session=s)

        async def title_ready():
            r = await b.send("Runtime.evaluate", {"expression": "document.title"}, session=s)
            return r.get("result", {}).get("value") == "ready"

        await until(title_ready, 'the page\'s title "ready"')
        await b.send("Runtime.evaluate", {"expression": "document.forms[0].submit()"}, session=s)

        async def next_page_loaded():
            urls = [
                e["params"]["request"]["url"]
                for e in network(b.events, s)
                if e["method"] == "Network.requestWillBeSent"
            ]
            return any("/home" in u for u in urls) and idle(b.events, s)

        await until(next_page_loaded, "the page after the form")
        await asyncio.sleep(0.3)
        result = har(b.events, s)
        try:
            await b.send("Browser.close")
        except Exception:
            pass
        b.reader.cancel()
        return result


def main():
    chromium_bin, url, out, profile = sys.argv[1:5]
    chromium = subprocess.Popen(
        [
            chromium_bin,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        result = asyncio.run(asyncio.wait_for(record(devtools_url(chromium), url), DEADLINE_S * 3))
    finally:
        chromium.kill()
        chromium.wait()
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
