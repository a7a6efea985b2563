#!/usr/bin/env python3
"""Bench client: runs INSIDE the ogdbench client container (stdlib only).

Each subcommand measures one path and prints one JSON document on stdout:

  client.py handshake --url URL [--ca FILE] --count N
      N new connections, one after the other: TCP connect, TLS handshake
      (https only) and a GET /api/v1/health on that connection (first response).
  client.py sse --url URL --post-url URL [--ca FILE] [--token T] --count N [--interval S]
      Opens GET /api/v1/events/stream on URL, then creates N chats one by one
      with POST /api/v1/chats on --post-url (direct to the app, the same for
      every path) and timestamps the arrival of each chat's chat.created
      event (matched by payload.chatId).
      Single thread, select(): no GIL hand-over in the timing.
  client.py upload --url URL [--ca FILE] [--token T] --file F --count N
      Creates a chat, then N multipart POST /api/v1/chats/{chat}/media of F
      with curl (no Expect: 100-continue).
  client.py seed --url URL [--ca FILE] [--token T] --count N --list PATH
      Creates N chats with POST /api/v1/chats (the chat list the throughput
      of the second endpoint reads), then GETs PATH with the secret and
      reports its status and how many chats it lists.
  client.py pageload --url URL [--ca FILE] --user U --password P --count N --mode M
      N loads of the web app through the password gate, as a browser without
      a cache fetches it: GET / with basic credentials and browser headers,
      then every same-site file the page names (scripts, styles, icons, the
      manifest), on one keep-alive connection. --mode session keeps the
      cookies the site sets (a browser), nosession never sends one (every
      request carries only the password, as every browser did before nginx's
      login sessions), wrong sends N different wrong passwords (GET / only).

Chats are created as Opengram 0.2.1 wants them, {"agentIds": [A], "modelId": M}
(--agent/--model, else the first agent and model of GET /api/v1/config). The
instance secret, if any, goes in "Authorization: Bearer" on every request.

Times: time.time() here and the app's clock (created_at of a chat, 1 ms) read the
same kernel clock (containers share it), so "creation -> arrival" needs no sync.
"""

from __future__ import annotations

import argparse
import datetime
import json
import selectors
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

HEALTH = "/api/v1/health"


def split(url: str) -> tuple[str, str, int]:
    u = urllib.parse.urlsplit(url)
    return u.scheme, u.hostname, u.port or (443 if u.scheme == "https" else 80)


def context(ca: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def read_response(sock, buf: bytes = b"") -> tuple[int, dict, bytes, bytes]:
    """Read one HTTP/1.1 response with Content-Length; (status, headers, body, rest)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the response headers")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed mid-body")
        rest += chunk
    return status, headers, rest[:length], rest[length:]


def request(host: str, method: str, path: str, body: bytes = b"",
            headers: dict | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "User-Agent: ogdbench"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def auth(token: str | None) -> dict:
    return {"Authorization": f"Bearer {token}"} if token else {}


def api(url: str, ca: str | None, token: str | None, method: str, path: str, body=None) -> tuple[int, dict]:
    """One JSON request with urllib (setup calls, not timed); (status, answer)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url.rstrip("/") + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", **auth(token)})
    ctx = context(ca) if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(req, timeout=30, context=ctx) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {"error": exc.read()[:200].decode("utf-8", "replace")}


def chat_body(args, url: str, title: str) -> dict:
    """The body of POST /api/v1/chats: an agent and a model of the deployment."""
    if not (args.agent and args.model):
        status, config = api(url, args.ca, args.token, "GET", "/api/v1/config")
        if status != 200:
            raise RuntimeError(f"GET /api/v1/config answered {status}")
        args.agent = args.agent or config["agents"][0]["id"]
        args.model = args.model or config["models"][0]["id"]
    return {"agentIds": [args.agent], "modelId": args.model, "title": title}


def epoch(timestamp: str) -> float:
    """The app's ISO 8601 created_at ('...Z') -> seconds since the epoch."""
    return datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def cmd_handshake(args) -> dict:
    scheme, host, port = split(args.url)
    ctx = context(args.ca) if scheme == "https" else None
    samples, errors = [], []
    for _ in range(args.count):
        try:
            t0 = time.perf_counter()
            raw = socket.create_connection((host, port), timeout=10)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t1 = time.perf_counter()
            sock = raw
            if ctx is not None:
                sock = ctx.wrap_socket(raw, server_hostname=host)  # handshake happens here
            t2 = time.perf_counter()
            sock.sendall(request(host, "GET", HEALTH, headers={"Connection": "close"}))
            status, _, _, _ = read_response(sock)
            t3 = time.perf_counter()
            sock.close()
            if status != 200:
                errors.append(f"status {status}")
                continue
            samples.append({"connect_ms": (t1 - t0) * 1e3,
                            "handshake_ms": (t2 - t1) * 1e3 if ctx else None,
                            "first_response_ms": (t3 - t0) * 1e3})
        except (OSError, ValueError) as exc:
            errors.append(repr(exc))
    return {"samples": samples, "errors": errors}


class Stream:
    """GET /api/v1/events/stream; yields (arrival time, event type, data) per event."""

    def __init__(self, url: str, ca: str | None, token: str | None = None):
        scheme, host, port = split(url)
        raw = socket.create_connection((host, port), timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = context(ca).wrap_socket(raw, server_hostname=host) if scheme == "https" else raw
        self.sock.sendall(request(host, "GET", "/api/v1/events/stream",
                                  headers={"Accept": "text/event-stream", **auth(token)}))
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("stream closed before its headers")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {k.strip().lower(): v.strip() for k, _, v in
                        (line.partition(":") for line in header_lines)}
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self.raw = rest  # undecoded bytes (chunked framing)
        self.text = b""  # decoded event-stream bytes
        self.sock.setblocking(False)

    def pending(self) -> int:
        return self.sock.pending() if isinstance(self.sock, ssl.SSLSocket) else 0

    def feed(self) -> bool:
        """Read what is there (non-blocking); False when the stream closed."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return False
                self.raw += chunk
                if not self.pending() and len(chunk) < 65536:
                    break
        except (BlockingIOError, ssl.SSLWantReadError):
            pass
        self._decode()
        return True

    def _decode(self) -> None:
        if not self.chunked:
            self.text += self.raw
            self.raw = b""
            return
        while True:
            line_end = self.raw.find(b"\r\n")
            if line_end < 0:
                return
            size = int(self.raw[:line_end].split(b";")[0] or b"0", 16)
            if len(self.raw) < line_end + 2 + size + 2:
                return
            self.text += self.raw[line_end + 2:line_end + 2 + size]
            self.raw = self.raw[line_end + 2 + size + 2:]

    def events(self) -> list[tuple[str, str]]:
        """Complete events decoded so far: (type, data); comments are dropped."""
        out = []
        while b"\n\n" in self.text:
            frame, _, self.text = self.text.partition(b"\n\n")
            etype, data = "message", []
            for line in frame.decode().split("\n"):
                if line.startswith(":"):
                    continue
                key, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if key == "event":
                    etype = value
                elif key == "data":
                    data.append(value)
            if data:
                out.append((etype, "\n".join(data)))
        return out


def cmd_sse(args) -> dict:
    """Both sockets are watched by one select(); whatever is ready is stamped with the
    time select() returned, so the POST answer and the event are timed alike."""
    stream = Stream(args.url, args.ca, args.token)
    if stream.status != 200:
        return {"error": f"stream answered {stream.status}", "samples": []}
    _, phost, pport = split(args.post_url)
    post = socket.create_connection((phost, pport), timeout=10)
    post.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    post.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(stream.sock, selectors.EVENT_READ, "stream")
    sel.register(post, selectors.EVENT_READ, "post")
    samples, errors = [], []
    arrived: dict[str, float] = {}  # chat id -> arrival time of its chat.created event

    stream.feed()
    stream.events()  # ": stream opened"
    for i in range(args.count):
        body = json.dumps(chat_body(args, args.post_url, f"ogdbench {i}")).encode()
        t_send = time.time()
        post.setblocking(True)
        post.sendall(request(phost, "POST", "/api/v1/chats", body,
                             {"Content-Type": "application/json", **auth(args.token)}))
        post.setblocking(False)
        pbuf, chat, t_resp = b"", None, None
        deadline = time.monotonic() + 10
        while chat is None or chat["id"] not in arrived:
            if time.monotonic() > deadline:
                errors.append(f"event {i}: timed out (POST answered: {chat is not None})")
                break
            keys = {"stream"} if stream.pending() else {k.data for k, _ in sel.select(0.5)}
            now = time.time()
            if "stream" in keys:
                if not stream.feed():
                    raise ConnectionError("event stream closed")
                for etype, data in stream.events():
                    if etype == "chat.created":
                        try:
                            arrived.setdefault(json.loads(data)["payload"]["chatId"], now)
                        except (ValueError, KeyError, TypeError):
                            errors.append(f"bad event data {data[:80]!r}")
            if "post" in keys and chat is None:
                try:
                    chunk = post.recv(65536)
                except BlockingIOError:
                    chunk = None
                if chunk == b"":
                    raise ConnectionError("POST connection closed")
                pbuf += chunk or b""
                head, sep, rest = pbuf.partition(b"\r\n\r\n")
                if sep:
                    lengths = [ln.split(b":", 1)[1] for ln in head.split(b"\r\n")
                               if ln.lower().startswith(b"content-length:")]
                    if len(rest) >= int(lengths[0]):
                        status = int(head.split(b" ", 2)[1])
                        if status != 201:
                            errors.append(f"event {i}: POST answered {status}")
                            break
                        t_resp, chat = now, json.loads(rest[:int(lengths[0])])
        if chat and chat["id"] in arrived:
            t_event = arrived[chat["id"]]
            samples.append({"created_to_arrival_ms": (t_event - epoch(chat["created_at"])) * 1e3,
                            "after_post_answer_ms": (t_event - t_resp) * 1e3,
                            "send_to_arrival_ms": (t_event - t_send) * 1e3})
        time.sleep(args.interval)
    stream.sock.close()
    post.close()
    return {"samples": samples, "errors": errors,
            "stream_headers": {k: v for k, v in stream.headers.items()
                               if k in ("content-type", "cache-control", "x-accel-buffering",
                                        "transfer-encoding")}}


def cmd_upload(args) -> dict:
    samples, errors = [], []
    status, chat = api(args.url, args.ca, args.token, "POST", "/api/v1/chats",
                       chat_body(args, args.url, "ogdbench uploads"))
    if status != 201:
        return {"samples": [], "errors": [f"creating the chat for uploads: status {status}: {chat}"]}
    for _ in range(args.count):
        cmd = ["curl", "--silent", "--show-error", "--max-time", "120", "-H", "Expect:",
               *(["-H", f"Authorization: Bearer {args.token}"] if args.token else []),
               "-F", f"file=@{args.file};type=application/octet-stream",
               "-o", "/tmp/ogdbench-upload.json",
               "-w", "%{http_code} %{time_total} %{size_upload} %{time_appconnect}",
               f"{args.url.rstrip('/')}/api/v1/chats/{chat['id']}/media"]
        if args.ca:
            cmd[1:1] = ["--cacert", args.ca]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            errors.append(proc.stderr.strip() or f"curl exit {proc.returncode}")
            continue
        code, total, size, appconnect = proc.stdout.split()
        try:
            answer = json.load(open("/tmp/ogdbench-upload.json"))
        except (OSError, ValueError):
            answer = {}
        if code != "201":
            errors.append(f"status {code}: {json.dumps(answer)[:200]}")
            continue
        seconds = float(total) - float(appconnect)
        samples.append({"seconds": seconds, "bytes": int(float(size)),
                        "stored_bytes": answer.get("byte_size"),
                        "mb_per_s": float(size) / 1e6 / seconds})
    return {"samples": samples, "errors": errors}


BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                         "Chrome/131.0.0.0 Safari/537.36",
           "Accept-Encoding": "gzip, deflate, br, zstd", "Accept-Language": "en-US,en;q=0.9"}
PAGE_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def page_files(html: str) -> list[str]:
    """The same-site files a page names in src= and href= (absolute paths, no
    protocol-relative ones), in order, each once."""
    import re
    found = re.findall(r'(?:src|href)="(/[^/"][^"]*)"', html)
    return list(dict.fromkeys(found))


def decoded(body: bytes, encoding: str) -> bytes:
    import zlib
    if encoding == "gzip":
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding in ("", "identity"):
        return body
    raise ValueError(f"cannot decode Content-Encoding {encoding!r}")


def cmd_pageload(args) -> dict:
    import base64
    import collections
    import http.client
    _, host, port = split(args.url)
    tries = 0

    def basic() -> str:
        # A guesser sends a new password each time (Caddy remembers the
        # answer for one it has checked, a wrong one included).
        password = args.password if args.mode != "wrong" else f"{args.password}-wrong-{time.time_ns()}-{tries}"
        return "Basic " + base64.b64encode(f"{args.user}:{password}".encode()).decode()
    conn = http.client.HTTPSConnection(host, port, context=context(args.ca), timeout=30)
    cookies: dict[str, str] = {}
    statuses: collections.Counter = collections.Counter()
    wire = requests = 0
    issued = 0
    files: list[str] = []

    def get(path: str, accept: str) -> tuple[int, bytes]:
        nonlocal wire, requests, issued, tries
        tries += 1
        headers = {**BROWSER, "Accept": accept, "Authorization": basic()}
        if cookies and args.mode == "session":
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        requests += 1
        wire += len(body)
        statuses[str(resp.status)] += 1
        for line in resp.headers.get_all("Set-Cookie") or []:
            name, _, value = line.split(";", 1)[0].partition("=")
            issued += 1
            cookies[name.strip()] = value
        return resp.status, decoded(body, resp.headers.get("Content-Encoding", ""))

    started = time.monotonic()
    for _ in range(args.count):
        status, body = get("/", PAGE_ACCEPT)
        if args.mode == "wrong" or status != 200:
            continue
        files = page_files(body.decode("utf-8", "replace"))
        for path in files:
            get(path, "*/*")
    return {"mode": args.mode, "loads": args.count, "requests": requests, "statuses": dict(statuses),
            "bytes_on_wire": wire, "seconds": time.monotonic() - started, "files_per_page": len(files),
            "files": files, "cookies_issued": issued}


def cmd_seed(args) -> dict:
    errors = []
    for i in range(args.count):
        status, chat = api(args.url, args.ca, args.token, "POST", "/api/v1/chats",
                           chat_body(args, args.url, f"ogdbench list {i}"))
        if status != 201:
            errors.append(f"POST /api/v1/chats: status {status}: {chat}")
    status, answer = api(args.url, args.ca, args.token, "GET", args.list)
    listed = len(answer.get("data", [])) if status == 200 else None
    return {"created": args.count - len(errors), "list_status": status, "listed": listed,
            "errors": errors[:3]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("handshake")
    h.add_argument("--url", required=True)
    h.add_argument("--ca")
    h.add_argument("--count", type=int, default=50)
    s = sub.add_parser("sse")
    s.add_argument("--url", required=True)
    s.add_argument("--post-url", required=True)
    s.add_argument("--ca")
    s.add_argument("--count", type=int, default=20)
    s.add_argument("--interval", type=float, default=0.05)
    u = sub.add_parser("upload")
    u.add_argument("--url", required=True)
    u.add_argument("--ca")
    d = sub.add_parser("seed")
    d.add_argument("--url", required=True)
    d.add_argument("--ca")
    d.add_argument("--count", type=int, default=20)
    d.add_argument("--list", default="/api/v1/chats")
    g = sub.add_parser("pageload")
    g.add_argument("--url", required=True)
    g.add_argument("--ca")
    g.add_argument("--user", required=True)
    g.add_argument("--password", required=True)
    g.add_argument("--count", type=int, default=20)
    g.add_argument("--mode", choices=("session", "nosession", "wrong"), default="session")
    for sp in (s, u, d):
        sp.add_argument("--token", default="", help="instance secret, sent as Authorization: Bearer")
        sp.add_argument("--agent", default="", help="agent id for new chats (default: the first in /api/v1/config)")
        sp.add_argument("--model", default="", help="model id for new chats (default: the first in /api/v1/config)")
    u.add_argument("--file", required=True)
    u.add_argument("--count", type=int, default=1)
    args = p.parse_args()
    fn = {"handshake": cmd_handshake, "sse": cmd_sse, "upload": cmd_upload,
          "seed": cmd_seed, "pageload": cmd_pageload}[args.cmd]
    print(json.dumps(fn(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
