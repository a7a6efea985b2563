#!/usr/bin/env python3
"""Probes a deployed Opengram as a user's client would (stdlib only).

Runs inside a client container of a Molecule scenario and prints JSON:
  probe.py sse    --base URL --ca FILE [--token T] [--events N] [--interval S]
  probe.py writes --base URL --ca FILE [--token T] --count N [--forge]
"""

import argparse
import http.client
import json
import random
import ssl
import sys
import threading
import time
import urllib.parse


def connect(base, ca, timeout=10.0):
    url = urllib.parse.urlsplit(base)
    context = ssl.create_default_context(cafile=ca)
    return http.client.HTTPSConnection(url.hostname, url.port or 443, context=context, timeout=timeout)


def auth(token):
    return {"Authorization": "Bearer " + token} if token else {}


def create_chat(conn, token, title, extra_headers=None):
    body = json.dumps({"title": title})
    headers = {"Content-Type": "application/json", **auth(token), **(extra_headers or {})}
    conn.request("POST", "/api/v1/chats", body=body, headers=headers)
    response = conn.getresponse()
    payload = response.read()
    return response.status, payload


def sse(args):
    """Open the event stream, then create chats one by one; time each event's arrival."""
    stream = connect(args.base, args.ca, timeout=args.timeout)
    path = "/api/v1/events/stream" + ("?token=" + urllib.parse.quote(args.token) if args.token else "")
    stream.request("GET", path, headers={"Accept": "text/event-stream"})
    response = stream.getresponse()
    result = {"status": response.status, "headers": {k.lower(): v for k, v in response.getheaders()}, "events": []}
    if response.status != 200:
        print(json.dumps(result))
        return 1

    opened = threading.Event()
    arrivals = []  # (monotonic time, raw data) of every event
    done = threading.Event()

    def reader():
        data_lines = []
        try:
            while not done.is_set():
                line = response.readline()
                if not line:
                    break
                now = time.monotonic()
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                if text.startswith(": stream opened"):
                    opened.set()
                elif text.startswith("data:"):
                    data_lines.append(text[5:].strip())
                elif text == "" and data_lines:
                    arrivals.append((now, "\n".join(data_lines)))
                    data_lines = []
        except (OSError, http.client.HTTPException):
            pass

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    if not opened.wait(args.timeout):
        result["error"] = "no ': stream opened' within %.1f s" % args.timeout
        print(json.dumps(result))
        return 1

    writer = connect(args.base, args.ca)
    sent = []
    run = "%06x" % random.getrandbits(24)
    for index in range(args.events):
        title = "probe-%s-%d" % (run, index)
        started = time.monotonic()
        status, payload = create_chat(writer, args.token, title)
        try:
            chat_id = str(json.loads(payload).get("id", title))
        except (ValueError, AttributeError):
            chat_id = title
        sent.append((chat_id, started, status))
        # Pace the events: they must arrive one by one, not as a batch.
        time.sleep(args.interval)

    deadline = time.monotonic() + args.timeout
    def arrival(chat_id):
        return next((at for at, data in list(arrivals) if chat_id in data), None)

    while time.monotonic() < deadline and any(arrival(c) is None for c, _, _ in sent):
        time.sleep(0.05)
    done.set()
    for chat_id, started, status in sent:
        arrived = arrival(chat_id)
        result["events"].append({
            "chat": chat_id,
            "post_status": status,
            "sent": started,
            "arrived": arrived,
            "delay": None if arrived is None else round(arrived - started, 4),
        })
    print(json.dumps(result))
    return 0


def writes(args):
    """Send write requests; with --forge each one claims another client IP."""
    conn = connect(args.base, args.ca)
    statuses = []
    for index in range(args.count):
        headers = {}
        if args.forge:
            fake = "203.0.113.%d" % (index % 250 + 1)
            headers = {"X-Forwarded-For": fake, "X-Real-IP": fake, "CF-Connecting-IP": fake}
        status, _ = create_chat(conn, args.token, "writes-%d" % index, headers)
        statuses.append(status)
    print(json.dumps({"statuses": statuses}))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["sse", "writes"])
    parser.add_argument("--base", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--token", default="")
    parser.add_argument("--events", type=int, default=3)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--forge", action="store_true")
    args = parser.parse_args()
    return sse(args) if args.command == "sse" else writes(args)


if __name__ == "__main__":
    sys.exit(main())
