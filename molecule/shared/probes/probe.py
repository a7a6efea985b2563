#!/usr/bin/env python3
"""Probes a deployed Opengram as a user's client would (stdlib only).

Runs inside a client container of a Molecule scenario and prints JSON:
  probe.py sse    --base URL --ca FILE [--token T] [--query-token] [--events N] [--interval S]
  probe.py writes --base URL --ca FILE [--token T] --count N [--forge]
  probe.py chat   --base URL --ca FILE [--token T] [--title T]

Chats are created as Opengram 0.2.1 wants them: POST /api/v1/chats with
{"agentIds": [AGENT], "modelId": MODEL} (--agent/--model, else the first agent
and model of GET /api/v1/config). The secret goes in "Authorization: Bearer";
only `sse --query-token` sends it as ?token=, the way the browser's
EventSource must (it cannot set headers).
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
    if url.scheme == "http":  # direct to the app (tried on a host without a proxy)
        return http.client.HTTPConnection(url.hostname, url.port or 80, timeout=timeout)
    context = ssl.create_default_context(cafile=ca)
    return http.client.HTTPSConnection(url.hostname, url.port or 443, context=context, timeout=timeout)


def auth(token):
    return {"Authorization": "Bearer " + token} if token else {}


def ids(args):
    """(agent id, model id) for new chats: given, else the first of each in GET /api/v1/config."""
    if args.agent and args.model:
        return args.agent, args.model
    conn = connect(args.base, args.ca)
    conn.request("GET", "/api/v1/config", headers=auth(args.token))
    response = conn.getresponse()
    config = json.loads(response.read())
    conn.close()
    return args.agent or config["agents"][0]["id"], args.model or config["models"][0]["id"]


def create_chat(conn, args, title, extra_headers=None):
    agent, model = args.chat_ids
    body = json.dumps({"agentIds": [agent], "modelId": model, "title": title})
    token = args.token
    headers = {"Content-Type": "application/json", **auth(token), **(extra_headers or {})}
    conn.request("POST", "/api/v1/chats", body=body, headers=headers)
    response = conn.getresponse()
    payload = response.read()
    return response.status, payload


def sse(args):
    """Open the event stream, then create chats one by one; time each event's arrival."""
    stream = connect(args.base, args.ca, timeout=args.timeout)
    path, headers = "/api/v1/events/stream", {"Accept": "text/event-stream"}
    if args.query_token and args.token:
        path += "?token=" + urllib.parse.quote(args.token, safe="")  # the browser's way
    else:
        headers.update(auth(args.token))
    stream.request("GET", path, headers=headers)
    response = stream.getresponse()
    result = {"status": response.status, "headers": {k.lower(): v for k, v in response.getheaders()}, "events": []}
    if response.status != 200:
        print(json.dumps(result))
        return 1

    opened = threading.Event()
    arrivals = []  # (monotonic time, event type, chat id) of every event
    done = threading.Event()

    def reader():
        data_lines, event_type = [], "message"
        try:
            while not done.is_set():
                line = response.readline()
                if not line:
                    break
                now = time.monotonic()
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                if text.startswith(": stream opened"):
                    opened.set()
                elif text.startswith("event:"):
                    event_type = text[6:].strip()
                elif text.startswith("data:"):
                    data_lines.append(text[5:].strip())
                elif text == "":
                    if data_lines:
                        try:
                            data = json.loads("\n".join(data_lines))
                            chat_id = (data.get("payload") or {}).get("chatId")
                            event_type = data.get("type", event_type)
                        except (ValueError, AttributeError):
                            chat_id = None
                        arrivals.append((now, event_type, chat_id))
                    data_lines, event_type = [], "message"
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
        status, payload = create_chat(writer, args, title)
        try:
            chat_id = json.loads(payload).get("id") if status == 201 else None
        except (ValueError, AttributeError):
            chat_id = None
        sent.append((chat_id, started, status))
        # Pace the events: they must arrive one by one, not as a batch.
        time.sleep(args.interval)

    deadline = time.monotonic() + args.timeout
    def arrival(chat_id):
        """When the chat.created event of this chat (payload.chatId) arrived."""
        return next((at for at, kind, chat in list(arrivals) if kind == "chat.created" and chat == chat_id), None)

    while time.monotonic() < deadline and any(c and arrival(c) is None for c, _, _ in sent):
        time.sleep(0.05)
    done.set()
    for chat_id, started, status in sent:
        arrived = arrival(chat_id) if chat_id else None
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
        status, _ = create_chat(conn, args, "writes-%d" % index, headers)
        statuses.append(status)
    print(json.dumps({"statuses": statuses}))
    return 0


def chat(args):
    """Create one chat; prints {"status", "chat"}."""
    status, payload = create_chat(connect(args.base, args.ca), args, args.title)
    try:
        body = json.loads(payload)
    except ValueError:
        body = payload.decode("utf-8", "replace")
    print(json.dumps({"status": status, "chat": body}))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["sse", "writes", "chat"])
    parser.add_argument("--base", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--token", default="")
    parser.add_argument("--query-token", action="store_true",
                        help="sse: send the secret as ?token= (the browser's EventSource) instead of Bearer")
    parser.add_argument("--agent", default="")
    parser.add_argument("--model", default="")
    parser.add_argument("--title", default="probe")
    parser.add_argument("--events", type=int, default=3)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--forge", action="store_true")
    args = parser.parse_args()
    args.chat_ids = ids(args)
    return {"sse": sse, "writes": writes, "chat": chat}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
