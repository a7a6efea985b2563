"""A tiny Opengram 0.2.1 API double for the client unit tests (stdlib only).

Only what the probes and bench clients touch, as /work/shared/UPSTREAM.md
describes the real app: POST /api/v1/chats needs agentIds and modelId (400
otherwise) and answers the chat in snake_case; uploads go to
POST /api/v1/chats/{id}/media; the event stream sends `: stream opened`, then
`chat.created` / `media.attached` events whose payload names the chatId;
writes and the stream need the instance secret (Bearer or ?token=). It also
records how every request carried the secret, so tests can prove the clients
use the header. `hold` > 0 plays a buffering proxy: events are held back and
sent all at once `hold` seconds after the first one.
"""

from __future__ import annotations

import datetime
import email.parser
import email.policy
import http.server
import json
import queue
import secrets
import threading
import time
import urllib.parse

SECRET = "og_fake/secret+1"
AGENT, MODEL = "assistant", "default"


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    # ---- helpers -------------------------------------------------------------------------
    def secret_carrier(self) -> str | None:
        """'bearer', 'query' or None, and records it."""
        url = urllib.parse.urlsplit(self.path)
        token = urllib.parse.parse_qs(url.query).get("token", [None])[0]
        how = None
        if self.headers.get("Authorization") == "Bearer " + SECRET:
            how = "bearer"
        elif token == SECRET:
            how = "query"
        self.server.seen.append((self.command, self.path, how))
        return how

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, code):
        self.reply(status, {"error": {"code": code, "message": code}})

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    # ---- routes ----------------------------------------------------------------------------
    def do_GET(self):  # noqa: N802
        path = urllib.parse.urlsplit(self.path).path
        how = self.secret_carrier()
        if path == "/api/v1/health":
            return self.reply(200, {"service": "opengram", "status": "ok", "version": "0.2.1"})
        if path == "/api/v1/config":
            return self.reply(200, {"agents": [{"id": AGENT, "name": "A"}], "models": [{"id": MODEL, "name": "M"}],
                                    "security": {"instanceSecretEnabled": True}})
        if path == "/api/v1/chats":
            return self.reply(200, {"data": list(self.server.chats.values()),
                                    "cursor": {"next": None, "hasMore": False}})
        if path == "/api/v1/events/stream":
            if how is None:
                return self.error(401, "UNAUTHORIZED")
            return self.stream()
        if path.startswith("/api/v1/files/"):
            media = self.server.media.get(path.rsplit("/", 1)[1])
            if media is None:
                return self.error(404, "NOT_FOUND")
            self.send_response(200)
            self.send_header("Content-Length", str(len(media["bytes"])))
            self.end_headers()
            self.wfile.write(media["bytes"])
            return None
        return self.error(404, "NOT_FOUND")

    def do_POST(self):  # noqa: N802
        path = urllib.parse.urlsplit(self.path).path
        how = self.secret_carrier()
        body = self.body()
        if how is None:
            return self.error(401, "UNAUTHORIZED")
        parts = path.strip("/").split("/")
        if path == "/api/v1/chats":
            try:
                data = json.loads(body)
            except ValueError:
                return self.error(400, "VALIDATION_ERROR")
            if data.get("agentIds") != [AGENT] or data.get("modelId") != MODEL:
                return self.error(400, "VALIDATION_ERROR")
            chat = {"id": secrets.token_urlsafe(15), "title": data.get("title", "New chat"), "agent_ids": [AGENT],
                    "model_id": MODEL, "created_at": now_iso()}
            self.server.chats[chat["id"]] = chat
            self.reply(201, chat)
            self.server.emit("chat.created", {"chatId": chat["id"]})
            return None
        if len(parts) == 5 and parts[:3] == ["api", "v1", "chats"] and parts[4] == "media":
            chat_id = parts[3]
            if chat_id not in self.server.chats:
                return self.error(404, "NOT_FOUND")
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
            files = [p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "file"]
            if not files:
                return self.error(400, "VALIDATION_ERROR")
            content = files[0].get_payload(decode=True)
            media_id = secrets.token_urlsafe(15)
            media = {"id": media_id, "chat_id": chat_id, "filename": files[0].get_filename(),
                     "content_type": "application/octet-stream", "byte_size": len(content), "kind": "file",
                     "storage_path": "uploads/%s/%s.bin" % (chat_id, media_id), "created_at": now_iso()}
            self.server.media[media_id] = {**media, "bytes": content}
            self.reply(201, media)
            self.server.emit("media.attached", {"chatId": chat_id, "mediaId": media_id})
            return None
        return self.error(404, "NOT_FOUND")

    def stream(self):
        events = queue.Queue()
        self.server.streams.append(events)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache, no-transform")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(data: bytes):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        try:
            chunk(b": stream opened\n\n")
            while not self.server.stopping.is_set():
                try:
                    frame = events.get(timeout=0.1)
                except queue.Empty:
                    continue
                chunk(frame)
        except OSError:
            pass
        finally:
            self.server.streams.remove(events)
            self.close_connection = True


class FakeOpengram(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, hold: float = 0.0):
        super().__init__(("127.0.0.1", 0), Handler)
        self.hold, self.held, self.lock = hold, [], threading.Lock()
        self.chats, self.media, self.streams, self.seen = {}, {}, [], []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return "http://127.0.0.1:%d" % self.server_address[1]

    def emit(self, kind: str, payload: dict):
        event_id = secrets.token_urlsafe(15)
        data = json.dumps({"id": event_id, "type": kind, "timestamp": now_iso(), "payload": payload})
        frame = ("event: %s\ndata: %s\nid: %s\n\n" % (kind, data, event_id)).encode()
        if not self.hold:
            for events in list(self.streams):
                events.put(frame)
            return
        with self.lock:
            self.held.append(frame)
            if len(self.held) == 1:
                threading.Timer(self.hold, self.flush).start()

    def flush(self):
        with self.lock:
            frames, self.held = self.held, []
        for events in list(self.streams):
            events.put(b"".join(frames))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        time.sleep(0.15)
        self.shutdown()
        self.server_close()
