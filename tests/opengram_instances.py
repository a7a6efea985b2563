"""Running Opengram for tests: the stand-in (a TEST FIXTURE built from
tests/fixtures/opengram-standin) and, where its tarball is on this host, the real release.

Shared by tests/standin (the stand-in's own tests) and tests/contract (one HTTP contract
checked against both). Fixtures using these helpers live in tests/conftest.py.
"""

from __future__ import annotations

import base64
import fcntl
import http.client
import importlib.util
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
STANDIN_DIR = TESTS_DIR / "fixtures" / "opengram-standin"
START_TIMEOUT = 15.0
REAL_TARBALL_NAME = "opengramsh-opengram-0.2.1.tgz"
REAL_INSTALL_TIMEOUT = 1200


# --- small helpers -------------------------------------------------------------------------


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
    """A port free on both IPv6 and IPv4 (Opengram binds dual-stack ::)."""
    if socket.has_dualstack_ipv6() and ipv6_loopback_available():
        with socket.create_server(("::", 0), family=socket.AF_INET6, dualstack_ipv6=True) as sock:
            return sock.getsockname()[1]
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def multipart_body(content: bytes, boundary: str, padding: int = 0, filename: str = "blob.bin",
                   content_type: str = "application/octet-stream", field_name: str = "file") -> bytes:
    """One file part, plus an optional text part of `padding` bytes (to size the body)."""
    body = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field_name}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
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


# --- one running instance ------------------------------------------------------------------


@dataclass
class Instance:
    """One `opengram start` process (stand-in or real) with its own OPENGRAM_HOME."""

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

    def start(self, wait: bool = True) -> Instance:
        self.starts += 1
        self.log_path = self.home.parent / f"opengram-{self.port}-{self.starts}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command + ["start"], env=self.env(), stdout=log, stderr=subprocess.STDOUT
            )
        if wait:
            wait_for(self._healthy, START_TIMEOUT, f"health on port {self.port}", interval=0.05)
        return self

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"opengram exited with {self.process.returncode}:\n{self.log()}")
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
            pytest.fail("opengram did not exit after SIGTERM")

    def connection(self, host: str = "127.0.0.1", timeout: float = 10.0) -> http.client.HTTPConnection:
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


# Kept for the stand-in's own tests.
StandIn = Instance


class EventStreamReader:
    """Reads an SSE response on a thread; records each block with its arrival time."""

    def __init__(self, instance: Instance, path: str = "/api/v1/events/stream", headers=None):
        self.conn = instance.connection(timeout=30)
        self.conn.request("GET", path, headers=headers or {})
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
        except Exception:  # noqa: BLE001 - the stream was closed under the reader
            pass
        self.blocks.put((time.monotonic(), None))  # end of stream

    def next_block(self, timeout: float = 5.0, skip_keepalives: bool = True) -> tuple[float, str | None]:
        deadline = time.monotonic() + timeout
        while True:
            arrived, block = self.blocks.get(timeout=max(0.0, deadline - time.monotonic()))
            if not (skip_keepalives and block == ": keepalive"):
                return arrived, block

    def close(self):
        try:
            if self.conn.sock is not None:
                self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()


def parse_event(block: str) -> tuple[str, dict, str]:
    """(event type, data, id) of one SSE block."""
    fields = dict(line.split(": ", 1) for line in block.split("\n"))
    return fields["event"], json.loads(fields["data"]), fields.get("id")


# --- the stand-in, built and installed -----------------------------------------------------


@dataclass
class Installed:
    """An installed package: the command that runs its CLI."""

    kind: str  # "standin" or "real"
    package_dir: Path
    cli: Path
    tarball: Path | None = None
    bin: Path | None = None

    @property
    def command(self) -> list[str]:
        return ["node", str(self.cli)]


def install_standin(work: Path, version: str) -> Installed:
    """The stand-in built with `version` and installed offline with npm under `work`."""
    tarball = load_build_module().build(version, work / "dist")
    prefix = work / "prefix"
    subprocess.run(
        ["npm", "install", "--prefix", str(prefix), "--offline", "--no-audit", "--no-fund", str(tarball)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    package_dir = (prefix / "node_modules" / "@opengramsh" / "opengram").resolve()
    return Installed("standin", package_dir, package_dir / "dist/cli/cli.js", tarball, prefix / "node_modules/.bin/opengram")


# --- the real release, where its tarball is on this host ----------------------------------


def real_tarball() -> Path | None:
    """OGD_REAL_PACKAGE when set (only that path), else /work/shared/opengram/..., else
    shared/opengram/... beside the repo or one of its parents (../shared from a worktree)."""
    if os.environ.get("OGD_REAL_PACKAGE"):
        explicit = Path(os.environ["OGD_REAL_PACKAGE"])
        return explicit.resolve() if explicit.is_file() else None
    candidates = []
    candidates.append(Path("/work/shared/opengram") / REAL_TARBALL_NAME)
    # A worktree at /work/<name> or a checkout beside `shared`.
    for parent in REPO_ROOT.parents:
        candidates.append(parent / "shared" / "opengram" / REAL_TARBALL_NAME)
    return next((c.resolve() for c in candidates if c.is_file()), None)


def real_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "opengram-deploy"


def load_release_filters():
    """plugins/filter/opengram_release.py: the release a host installs (as
    tools/lock.py loads it)."""
    import sys

    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from tools.lock import release

    return release


def real_lock(version: str = "0.2.1") -> dict:
    """The repository's lock of the real release (roles/opengram/files/locks), as the role reads it."""
    return json.loads((REPO_ROOT / "roles/opengram/files/locks" / version / "package-lock.json").read_text())


def install_real(tarball: Path) -> Installed:
    """The real tarball installed with `npm ci` from the repository's lock, exactly as the role
    installs a release (same package.json, same rendered lock, same release name), once per
    release into ~/.cache/opengram-deploy (better-sqlite3 compiles for minutes where its
    prebuilt binary cannot be downloaded)."""
    filters = load_release_filters()
    plan = filters.opengram_release(real_lock(), "@opengramsh/opengram", "0.2.1", tarball.name,
                                    filters.opengram_file_integrity(tarball), ["better-sqlite3", "sharp"])
    cache = real_cache_root() / f"opengram-{plan['name']}"
    project = cache / "lib"
    package_dir = project / "node_modules" / "@opengramsh" / "opengram"
    marker = cache / ".installed"
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.parent / f".opengram-{plan['name']}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one installer at a time; the others wait, then reuse
        if not marker.exists():
            if cache.exists():
                shutil.rmtree(cache)
            project.mkdir(parents=True)
            (project / "package.json").write_text(filters.canonical_json(plan["package_json"]))
            (project / "package-lock.json").write_text(filters.canonical_json(plan["lock"]))
            shutil.copy(tarball, project / tarball.name)
            env = {
                **os.environ,
                "NODE_EXTRA_CA_CERTS": os.environ.get("NODE_EXTRA_CA_CERTS", "/etc/ssl/certs/ca-certificates.crt"),
                "npm_config_update_notifier": "false",
                "npm_config_fund": "false",
                "npm_config_audit": "false",
            }
            result = subprocess.run(
                ["npm", "ci", "--omit=dev"],
                cwd=project, env=env, capture_output=True, text=True, timeout=REAL_INSTALL_TIMEOUT,
            )
            (cache / "npm-install.log").write_text(result.stdout + result.stderr)
            if result.returncode != 0:
                pytest.fail(f"npm ci of the real release failed ({result.returncode}); "
                            f"see {cache / 'npm-install.log'}:\n{result.stderr[-2000:]}")
            marker.write_text(plan["name"] + "\n")
    return Installed("real", package_dir, package_dir / "dist/cli/cli.js", tarball)
