"""Tests of the Opengram stand-in (a TEST FIXTURE, not Opengram).

The stand-in lives in tests/fixtures/opengram-standin. These tests build it with build.py,
install the tarball offline with npm, start the installed package on a free port with a
temporary OPENGRAM_HOME, and prove each upstream behaviour it has to reproduce
(see /work/shared/UPSTREAM.md).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import importlib.util
import json
import math
import os
import queue
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

STANDIN_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "opengram-standin"
BUILT_VERSION = "0.2.1-test.1"  # differs from package.json, so it proves build.py sets it
MAX_UPLOAD = 100_000
MULTIPART_OVERHEAD = 262_144
JSON_UPLOAD_LIMIT = math.ceil(MAX_UPLOAD * 4 / 3) + 65_536
VALID_CONFIG = {"agents": [{"id": "default"}], "models": [{"id": "test-model"}], "maxUploadBytes": MAX_UPLOAD}
START_TIMEOUT = 10.0


# --- helpers ------------------------------------------------------------------------------


def load_build_module():
    spec = importlib.util.spec_from_file_location("opengram_standin_build", STANDIN_DIR / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wait_for(condition, timeout: float, what: str, interval: float = 0.02):
    """Poll `condition` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port() -> int:
    """A port free on both IPv6 and IPv4 (the stand-in binds dual-stack ::)."""
    if socket.has_dualstack_ipv6() and ipv6_loopback_available():
        with socket.create_server(("::", 0), family=socket.AF_INET6, dualstack_ipv6=True) as sock:
            return sock.getsockname()[1]
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def multipart_body(content: bytes, boundary: str, padding: int = 0) -> bytes:
    """One file part, plus an optional text part of `padding` bytes (to size the body)."""
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="blob.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + content + b"\r\n"
    if padding:
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'.encode()
        body += b"p" * padding + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def multipart_body_of_size(total: int, content: bytes, boundary: str) -> bytes:
    """A multipart body of exactly `total` bytes carrying `content` as its file."""
    without_padding = len(multipart_body(content, boundary, padding=1)) - 1
    body = multipart_body(content, boundary, padding=total - without_padding)
    assert len(body) == total
    return body


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def error_code(self):
        return self.json()["error"]["code"]


@dataclass
class StandIn:
    """One `opengram start` process of the installed stand-in."""

    command: list[str]
    home: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    port_in_env: bool = True  # False: the port comes from the config file
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    starts: int = 0

    @property
    def config_path(self) -> Path:
        return self.home / "opengram.config.json"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENGRAM_")}
        env.update(HOME=str(self.home.parent), OPENGRAM_HOME=str(self.home))
        if self.port_in_env:
            env["OPENGRAM_SERVER_PORT"] = str(self.port)
        return {**env, **self.extra_env}

    def start(self, wait: bool = True) -> StandIn:
        self.starts += 1
        self.log_path = self.home.parent / f"standin-{self.port}-{self.starts}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command + ["start"], env=self.env(), stdout=log, stderr=subprocess.STDOUT
            )
        if wait:
            wait_for(self._healthy, START_TIMEOUT, f"stand-in health on port {self.port}")
        return self

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"stand-in exited with {self.process.returncode}:\n{self.log()}")
        try:
            return self.request("GET", "/api/v1/health").status == 200
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    def stop(self, timeout: float = 5.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail("stand-in did not exit after SIGTERM")

    def connection(self, host: str = "127.0.0.1", timeout: float = 5.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, host="127.0.0.1", chunked=False) -> Response:
        conn = self.connection(host)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                headers = {"Content-Type": "application/json", **(headers or {})}
            conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
            resp = conn.getresponse()
            return Response(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def post_chat(self, title="chat", headers=None) -> Response:
        return self.request("POST", "/api/v1/chats", {"title": title}, headers)


class EventStreamReader:
    """Reads an SSE response on a thread; records each block with its arrival time."""

    def __init__(self, standin: StandIn, path: str = "/api/v1/events/stream"):
        self.conn = standin.connection(timeout=30)
        self.conn.request("GET", path)
        self.response = self.conn.getresponse()
        self.blocks: queue.Queue[tuple[float, str | None]] = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        buffer = b""
        try:
            while chunk := self.response.read1(65536):
                buffer += chunk
                while b"\n\n" in buffer:
                    block, buffer = buffer.split(b"\n\n", 1)
                    self.blocks.put((time.monotonic(), block.decode()))
        except OSError:
            pass
        self.blocks.put((time.monotonic(), None))  # end of stream

    def next_block(self, timeout: float = 5.0, skip_pings: bool = True) -> tuple[float, str | None]:
        deadline = time.monotonic() + timeout
        while True:
            arrived, block = self.blocks.get(timeout=max(0.0, deadline - time.monotonic()))
            if not (skip_pings and block == ": ping"):
                return arrived, block

    def close(self):
        self.conn.close()


def parse_event(block: str) -> tuple[str, dict]:
    fields = dict(line.split(": ", 1) for line in block.split("\n"))
    return fields["event"], json.loads(fields["data"])


# --- fixtures -----------------------------------------------------------------------------


@dataclass
class Installed:
    tarball: Path
    package_dir: Path
    cli: Path
    bin: Path


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> Installed:
    """The stand-in built with BUILT_VERSION and installed offline with npm."""
    work = tmp_path_factory.mktemp("standin-build")
    tarball = load_build_module().build(BUILT_VERSION, work / "dist")
    prefix = work / "prefix"
    subprocess.run(
        ["npm", "install", "--prefix", str(prefix), "--offline", "--no-audit", "--no-fund", str(tarball)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    package_dir = (prefix / "node_modules" / "@opengramsh" / "opengram").resolve()
    return Installed(tarball, package_dir, package_dir / "dist/cli/cli.js", prefix / "node_modules/.bin/opengram")


@pytest.fixture
def make_standin(installed, tmp_path):
    """Factory: write a config (unless None), start the stand-in, stop it at teardown."""
    started: list[StandIn] = []

    def make(config=VALID_CONFIG, env=None, command=None, home=None, wait=True) -> StandIn:
        home = home or tmp_path / f"home{len(started)}"
        home.mkdir(parents=True, exist_ok=True)
        if config is not None:
            (home / "opengram.config.json").write_text(json.dumps(config, indent=2) + "\n")
        standin = StandIn(command or ["node", str(installed.cli)], home, env or {})
        started.append(standin)
        return standin.start(wait=wait)

    yield make
    for standin in started:
        standin.stop()


def run_cli(installed, *args, env=None, timeout=START_TIMEOUT) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OPENGRAM_")}
    return subprocess.run(
        ["node", str(installed.cli), *args],
        env={**full_env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --- build and CLI ------------------------------------------------------------------------


def test_build_script_packs_requested_version(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(STANDIN_DIR / "build.py"), "--version", "3.4.5", "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    tarball = Path(result.stdout.strip())
    assert tarball == out.resolve() / "opengramsh-opengram-3.4.5.tgz"
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("package/package.json"))
    assert manifest["name"] == "@opengramsh/opengram"
    assert manifest["version"] == "3.4.5"
    assert manifest["bin"] == {"opengram": "dist/cli/cli.js"}
    assert manifest.get("dependencies", {}) == {}
    assert "TEST FIXTURE" in manifest["description"]
    assert {"package/dist/cli/cli.js", "package/README.md"} <= names
    assert any(name.startswith("package/migrations/") for name in names)
    assert "package/build.py" not in names
    # The source tree keeps its own version.
    assert json.loads((STANDIN_DIR / "package.json").read_text())["version"] == "0.2.1"


def test_build_rejects_a_bad_version(tmp_path):
    with pytest.raises(ValueError):
        load_build_module().build("not-a-version", tmp_path)


def test_installed_bin_and_cli_print_the_built_version(installed):
    assert installed.bin.is_symlink()
    by_bin = subprocess.run([str(installed.bin), "--version"], capture_output=True, text=True, check=True)
    assert by_bin.stdout.strip() == BUILT_VERSION
    assert run_cli(installed, "--version").stdout.strip() == BUILT_VERSION


@pytest.mark.parametrize("args", [["bogus"], []])
def test_unknown_or_missing_command_prints_usage_and_exits_2(installed, args):
    result = run_cli(installed, *args)
    assert result.returncode == 2
    assert "Usage: opengram" in result.stderr


# --- start-up -----------------------------------------------------------------------------


def test_start_without_config_crashes_with_enoent(installed, tmp_path):
    home = tmp_path / "home"
    result = run_cli(installed, "start", env={"OPENGRAM_HOME": str(home), "HOME": str(tmp_path)})
    assert result.returncode != 0
    fallback = installed.package_dir / "config" / "opengram.config.json"
    assert "ENOENT" in result.stderr
    assert f"open '{fallback}'" in result.stderr
    assert (home / "data").is_dir()  # created before the crash, like upstream


def test_start_sets_environment_and_runs_from_package_dir(make_standin, installed):
    standin = make_standin()
    startup = standin.log().splitlines()[0]
    home, data = standin.home, standin.home / "data"
    assert f"config={standin.config_path} " in startup
    assert f"database={data / 'opengram.db'} " in startup
    assert f"data={data} " in startup
    assert f"migrations={installed.package_dir / 'migrations'} " in startup
    assert "node_env=production " in startup
    assert startup.endswith(f"cwd={installed.package_dir}")
    assert Path(f"/proc/{standin.process.pid}/cwd").resolve() == installed.package_dir
    database = json.loads((data / "opengram.db").read_text())
    assert database["migrations"] == ["0001_init.sql"]
    assert (data / "uploads").is_dir()
    assert home.is_dir()


def test_outside_config_path_is_used_only_when_home_has_no_config(make_standin, tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(VALID_CONFIG))
    standin = make_standin(config=None, env={"OPENGRAM_CONFIG_PATH": str(outside)})
    assert f"config={outside} " in standin.log()
    assert "vapidPublicKey" in outside.read_text()

    standin.stop()
    standin.config_path.write_text(json.dumps(VALID_CONFIG))
    standin.start()
    assert f"config={standin.config_path} " in standin.log()


def test_start_through_the_bin_symlink(make_standin, installed):
    standin = make_standin(command=[str(installed.bin)])
    assert standin.request("GET", "/api/v1/health").json()["version"] == BUILT_VERSION
    assert Path(f"/proc/{standin.process.pid}/cwd").resolve() == installed.package_dir


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"agents": []}, "at least one agent"),
        ({"models": None}, "at least one model"),
        ({"push": {"enabled": True, "subject": "https://localhost/contact"}}, "must not contain localhost"),
        ({"push": {"enabled": True, "subject": "http://example.org"}}, "https:// URL or a mailto:"),
        ({"security": {"instanceSecretEnabled": True, "instanceSecret": ""}}, "instanceSecret must be non-empty"),
    ],
)
def test_invalid_config_refused_at_start(installed, tmp_path, change, message):
    home = tmp_path / "home"
    home.mkdir()
    config_file = home / "opengram.config.json"
    config_file.write_text(json.dumps({**VALID_CONFIG, **change}, indent=2))
    before = config_file.read_bytes()
    result = run_cli(installed, "start", env={"OPENGRAM_HOME": str(home), "OPENGRAM_SERVER_PORT": str(free_port())})
    assert result.returncode == 1
    assert message in result.stderr
    assert config_file.read_bytes() == before  # nothing written for an invalid config


@pytest.mark.parametrize(
    ("push", "subject"),
    [(None, "mailto:admin@example.com"), ({"subject": "https://ops.example.org/contact"}, "https://ops.example.org/contact")],
)
def test_push_keys_written_at_first_start_and_preserved(make_standin, push, subject):
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    config = {"server": {"port": 1}, **VALID_CONFIG, "custom": {"z": 1, "a": [1, 2]}}
    if push is not None:
        config["push"] = push
    standin = make_standin(config=config)

    text = standin.config_path.read_text()
    written = json.loads(text)
    assert text == json.dumps(written, indent=2) + "\n"
    assert list(written) == list(config) + ([] if push else ["push"])
    assert {k: v for k, v in written.items() if k != "push"} == {k: v for k, v in config.items() if k != "push"}
    keys = written["push"]
    assert keys["enabled"] is True
    assert keys["subject"] == subject
    public, private = b64url_decode(keys["vapidPublicKey"]), b64url_decode(keys["vapidPrivateKey"])
    assert len(public) == 65 and public[0] == 0x04
    assert len(private) == 32
    derived = ec.derive_private_key(int.from_bytes(private, "big"), ec.SECP256R1()).public_key()
    assert derived.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint) == public
    assert "generated VAPID push keys" in standin.log()

    standin.stop()
    standin.start()
    assert standin.config_path.read_text() == text  # keys kept, file not rewritten
    assert "generated VAPID push keys" not in standin.log()


# --- network ------------------------------------------------------------------------------


def test_health(make_standin):
    standin = make_standin()
    response = standin.request("GET", "/api/v1/health")
    assert response.status == 200
    assert response.headers["content-type"].startswith("application/json")
    health = response.json()
    assert health.pop("uptime") >= 0
    assert health == {"service": "opengram", "status": "ok", "version": BUILT_VERSION}


def test_listens_on_all_interfaces_ipv4_and_ipv6(make_standin):
    if not ipv6_loopback_available():
        pytest.skip("no IPv6 loopback on this host")
    standin = make_standin()
    assert f"listening on [::]:{standin.port}" in standin.log()
    for host in ("127.0.0.1", "::1"):
        assert standin.request("GET", "/api/v1/health", host=host).status == 200


def test_port_from_config_when_env_unset(installed, tmp_path):
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    (home / "opengram.config.json").write_text(json.dumps({**VALID_CONFIG, "server": {"port": port}}))
    standin = StandIn(["node", str(installed.cli)], home, port=port, port_in_env=False)
    try:
        standin.start()
        assert f"listening on [::]:{port}" in standin.log()
    finally:
        standin.stop()


def test_event_stream_headers_and_immediate_events(make_standin):
    standin = make_standin(env={"OPENGRAM_STANDIN_HEARTBEAT_MS": "200"})
    stream = EventStreamReader(standin)
    try:
        headers = stream.response.headers
        assert stream.response.status == 200
        assert headers["content-type"] == "text/event-stream"
        assert headers["cache-control"] == "no-cache, no-transform"
        assert headers["x-accel-buffering"] == "no"
        assert stream.next_block()[1] == ": stream opened"

        for title in ("first", "second", "third"):
            posted_at = time.monotonic()
            created = standin.post_chat(title)
            assert created.status == 201
            chat = created.json()
            arrived, block = stream.next_block()
            assert arrived - posted_at < 0.5, f"event arrived {arrived - posted_at:.3f} s after the POST"
            event, data = parse_event(block)
            assert event == "chat.created"
            assert data["chatId"] == chat["id"]
            assert data["createdAt"] == chat["createdAt"]
            assert data["chat"] == {"id": chat["id"], "title": title, "createdAt": chat["createdAt"]}

        assert stream.next_block(timeout=2, skip_pings=False)[1] == ": ping"
        listed = standin.request("GET", "/api/v1/chats").json()["chats"]
        assert [c["title"] for c in listed] == ["first", "second", "third"]
    finally:
        stream.close()


# --- rate limiting ------------------------------------------------------------------------


def rate_limited(response: Response) -> bool:
    if response.status != 429:
        return False
    assert response.error_code == "RATE_LIMITED"
    assert int(response.headers["retry-after"]) >= 1
    return True


def test_rate_limit_per_first_forwarded_for_when_trusted(make_standin):
    standin = make_standin(
        env={
            "OPENGRAM_TRUST_PROXY_HEADERS": "Yes",
            "OPENGRAM_WRITE_RATE_LIMIT_MAX": "3",
            "OPENGRAM_WRITE_RATE_LIMIT_WINDOW_MS": "60000",
        }
    )

    def post(**headers):
        return standin.post_chat(headers=headers)

    for _ in range(3):
        assert post(**{"X-Forwarded-For": "198.51.100.7, 10.0.0.1"}).status == 201
    limited = post(**{"X-Forwarded-For": "198.51.100.7, 10.0.0.1"})
    assert rate_limited(limited)
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert rate_limited(post(**{"X-Forwarded-For": "  198.51.100.7  "}))  # first address, trimmed
    # The upstream weakness: a client-chosen first address gets a fresh bucket.
    assert post(**{"X-Forwarded-For": "203.0.113.9, 198.51.100.7"}).status == 201

    for header, ip in (("X-Real-IP", "192.0.2.1"), ("CF-Connecting-IP", "192.0.2.2")):
        for _ in range(3):
            assert post(**{header: ip}).status == 201
        assert rate_limited(post(**{header: ip}))

    for _ in range(3):  # no proxy header at all: one shared bucket
        assert post().status == 201
    assert rate_limited(post())
    assert standin.request("GET", "/api/v1/chats").status == 200  # reads are not limited


@pytest.mark.parametrize("trust", [None, "0"])
def test_rate_limit_single_shared_bucket_without_trust(make_standin, trust):
    env = {"OPENGRAM_WRITE_RATE_LIMIT_MAX": "2", "OPENGRAM_WRITE_RATE_LIMIT_WINDOW_MS": "60000"}
    if trust is not None:
        env["OPENGRAM_TRUST_PROXY_HEADERS"] = trust
    standin = make_standin(env=env)
    assert standin.post_chat(headers={"X-Forwarded-For": "198.51.100.1"}).status == 201
    assert standin.post_chat(headers={"X-Real-IP": "198.51.100.2"}).status == 201
    assert rate_limited(standin.post_chat(headers={"X-Forwarded-For": "198.51.100.3"}))
    if ipv6_loopback_available():  # another peer address, still the same bucket
        assert rate_limited(standin.request("POST", "/api/v1/chats", {"title": "v6"}, host="::1"))


def test_rate_limit_window_resets(make_standin):
    standin = make_standin(env={"OPENGRAM_WRITE_RATE_LIMIT_MAX": "1", "OPENGRAM_WRITE_RATE_LIMIT_WINDOW_MS": "400"})
    assert standin.post_chat().status == 201
    limited = standin.post_chat()
    assert rate_limited(limited)
    assert limited.headers["retry-after"] == "1"
    wait_for(lambda: standin.post_chat().status == 201, 3.0, "the rate-limit window to reset", interval=0.05)


def test_rate_limit_checked_before_the_body_is_read(make_standin):
    standin = make_standin(env={"OPENGRAM_WRITE_RATE_LIMIT_MAX": "1", "OPENGRAM_WRITE_RATE_LIMIT_WINDOW_MS": "60000"})
    assert standin.post_chat().status == 201
    with socket.create_connection(("127.0.0.1", standin.port), timeout=3) as sock:
        sock.sendall(
            b"POST /api/v1/chats HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000\r\n\r\n{"
        )
        reply = sock.recv(4096)  # the body never completes: only an early answer arrives
    assert reply.startswith(b"HTTP/1.1 429 ")
    assert b"RATE_LIMITED" in reply


# --- instance secret ----------------------------------------------------------------------


@pytest.mark.parametrize("source", ["env", "config"])
def test_instance_secret_required_except_for_health(make_standin, source):
    secret = f"og_{source}-secret"
    if source == "env":
        standin = make_standin(env={"OPENGRAM_INSTANCE_SECRET": secret})
    else:
        security = {"instanceSecretEnabled": True, "instanceSecret": secret}
        standin = make_standin(config={**VALID_CONFIG, "security": security})
    bearer = {"Authorization": f"Bearer {secret}"}

    assert standin.request("GET", "/api/v1/health").status == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": secret}):
        denied = standin.request("GET", "/api/v1/chats", headers=headers)
        assert denied.status == 401 and denied.error_code == "UNAUTHORIZED"
    assert standin.request("GET", "/api/v1/chats", headers=bearer).status == 200
    assert standin.request("GET", f"/api/v1/chats?token={secret}").status == 200
    assert standin.request("GET", "/api/v1/chats?token=wrong").status == 401

    assert standin.post_chat().status == 401
    assert standin.post_chat(headers=bearer).status == 201
    assert standin.request("PATCH", "/api/v1/config/admin", {"x": 1}).status == 401
    assert standin.request("GET", "/api/v1/uploads/00000000-0000-0000-0000-000000000000").status == 401
    assert standin.request("GET", "/api/v1/events/stream").status == 401

    stream = EventStreamReader(standin, f"/api/v1/events/stream?token={secret}")
    try:
        assert stream.response.status == 200
        assert stream.next_block()[1] == ": stream opened"
    finally:
        stream.close()

    # One log line per request, path without the query string: the token never gets logged.
    wait_for(lambda: "GET /api/v1/events/stream 401 " in standin.log(), 2, "request log line")
    assert "GET /api/v1/health 200 ::ffff:127.0.0.1" in standin.log()
    assert secret not in standin.log()


# --- uploads ------------------------------------------------------------------------------


def post_multipart(standin: StandIn, body: bytes, boundary: str, chunked: bool = False) -> Response:
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if chunked:
        chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
        return standin.request("POST", "/api/v1/uploads", chunks, headers, chunked=True)
    return standin.request("POST", "/api/v1/uploads", body, headers)


def assert_too_large(response: Response):
    assert response.status == 413
    assert response.error_code == "PAYLOAD_TOO_LARGE"


def test_multipart_upload_limits(make_standin):
    standin = make_standin()
    boundary = "----standin-boundary-7MA4YWxkTrZu0gW"
    content = os.urandom(MAX_UPLOAD)

    created = post_multipart(standin, multipart_body(content, boundary), boundary)
    assert created.status == 201
    upload = created.json()
    assert upload["size"] == MAX_UPLOAD
    assert upload["sha256"] == hashlib.sha256(content).hexdigest()
    assert (standin.home / "data" / "uploads" / upload["id"]).read_bytes() == content
    fetched = standin.request("GET", f"/api/v1/uploads/{upload['id']}")
    assert fetched.status == 200 and fetched.body == content

    limit = MAX_UPLOAD + MULTIPART_OVERHEAD
    at_limit = multipart_body_of_size(limit, content, boundary)
    assert post_multipart(standin, at_limit, boundary).status == 201
    over_limit = multipart_body_of_size(limit + 1, content, boundary)
    assert_too_large(post_multipart(standin, over_limit, boundary))  # Content-Length
    assert_too_large(post_multipart(standin, over_limit, boundary, chunked=True))  # counted
    assert post_multipart(standin, at_limit, boundary, chunked=True).status == 201
    # A file over maxUploadBytes is refused even inside a small body.
    assert_too_large(post_multipart(standin, multipart_body(content + b"x", boundary), boundary))
    assert standin.request("GET", "/api/v1/health").status == 200


def test_json_base64_upload_limits(make_standin):
    standin = make_standin()

    def post_json(data: dict) -> Response:
        return standin.request("POST", "/api/v1/uploads", data)

    content = os.urandom(MAX_UPLOAD)
    created = post_json({"filename": "a.bin", "base64Data": base64.b64encode(content).decode()})
    assert created.status == 201
    assert created.json()["size"] == MAX_UPLOAD
    assert created.json()["sha256"] == hashlib.sha256(content).hexdigest()
    assert standin.request("GET", f"/api/v1/uploads/{created.json()['id']}").body == content

    assert_too_large(post_json({"filename": "b.bin", "base64Data": base64.b64encode(content + b"x").decode()}))
    assert_too_large(post_json({"filename": "c.bin", "base64Data": "A" * JSON_UPLOAD_LIMIT}))
    assert post_json({"filename": "d.bin", "base64Data": "not base64!"}).status == 400
    assert post_json({"base64Data": "AAAA"}).status == 400


# --- persistence, config rewrite, shutdown ------------------------------------------------


def test_data_persists_across_restart(make_standin):
    standin = make_standin()
    chats = [standin.post_chat(title).json() for title in ("kept", "also kept")]
    upload = standin.request("POST", "/api/v1/uploads", {"filename": "f", "base64Data": "aGVsbG8="}).json()

    assert standin.stop() == 0
    data = standin.home / "data"
    assert json.loads((data / "opengram.db").read_text())["chats"] == chats
    assert sorted(p.name for p in data.iterdir()) == ["opengram.db", "uploads"]  # no temp files left
    assert (data / "uploads" / upload["id"]).read_bytes() == b"hello"

    standin.start()
    assert standin.request("GET", "/api/v1/chats").json()["chats"] == chats
    assert standin.request("GET", f"/api/v1/uploads/{upload['id']}").body == b"hello"


def test_patch_config_admin_rewrites_the_file(make_standin):
    standin = make_standin(config={**VALID_CONFIG, "server": {"port": 1}})
    before = json.loads(standin.config_path.read_text())

    patch = {"server": {"publicBaseUrl": "https://chat.example.org"}, "maxUploadBytes": 2 * MAX_UPLOAD}
    assert standin.request("PATCH", "/api/v1/config/admin", patch).json() == {"ok": True}
    text = standin.config_path.read_text()
    after = json.loads(text)
    assert text == json.dumps(after, indent=2) + "\n"
    assert list(after) == list(before)
    assert after["server"] == {"port": 1, "publicBaseUrl": "https://chat.example.org"}
    assert after["maxUploadBytes"] == 2 * MAX_UPLOAD
    assert after["push"] == before["push"]  # the generated keys survive the rewrite
    # The running server uses the new limit.
    bigger = base64.b64encode(b"x" * (MAX_UPLOAD + 1)).decode()
    assert standin.request("POST", "/api/v1/uploads", {"filename": "f", "base64Data": bigger}).status == 201

    refused = standin.request("PATCH", "/api/v1/config/admin", {"agents": []})
    assert refused.status == 400 and refused.error_code == "VALIDATION_ERROR"
    assert standin.request("PATCH", "/api/v1/config/admin", [1]).status == 400
    assert standin.config_path.read_text() == text


def test_sigterm_ends_streams_and_exits(make_standin):
    standin = make_standin()
    stream = EventStreamReader(standin)
    try:
        assert stream.next_block()[1] == ": stream opened"
        sent_at = time.monotonic()
        standin.process.send_signal(signal.SIGTERM)
        ended_at, block = stream.next_block(timeout=3)
        assert block is None, "the stream should end"
        assert standin.process.wait(3) == 0
        assert ended_at - sent_at < 1.0
        assert "received SIGTERM" in standin.log()
    finally:
        stream.close()


def test_sigterm_forces_exit_after_two_seconds(make_standin):
    standin = make_standin()
    with socket.create_connection(("127.0.0.1", standin.port), timeout=5) as stuck:
        stuck.sendall(b"POST /api/v1/chats HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        standin.request("GET", "/api/v1/health")  # barrier: the stuck request has been seen
        sent_at = time.monotonic()
        standin.process.send_signal(signal.SIGTERM)
        returncode = standin.process.wait(5)
        elapsed = time.monotonic() - sent_at
    assert 1.8 <= elapsed < 3.5, f"exited after {elapsed:.2f} s"
    assert returncode != 0
    assert "forced exit" in standin.log()
