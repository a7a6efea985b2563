"""Tests of the Opengram stand-in (a TEST FIXTURE, not Opengram).

The stand-in lives in tests/fixtures/opengram-standin. These tests build it with build.py,
install the tarball offline with npm, start the installed package on a free port with a
temporary OPENGRAM_HOME, and prove the process-level upstream behaviours it reproduces
(see /work/shared/UPSTREAM.md). The HTTP API itself is checked, against the stand-in AND the
real release, by tests/contract (one contract for both).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from opengram_instances import (
    STANDIN_DIR,
    START_TIMEOUT,
    EventStreamReader,
    Installed,
    Response,
    StandIn,
    b64url_decode,
    free_port,
    install_standin,
    ipv6_loopback_available,
    load_build_module,
    parse_event,
    wait_for,
)

BUILT_VERSION = "0.2.1-test.1"  # differs from package.json, so it proves build.py sets it
VALID_CONFIG = {"agents": [{"id": "default"}], "models": [{"id": "test-model"}], "maxUploadBytes": 100_000}
CHAT = {"agentIds": ["default"], "modelId": "test-model"}


def post_chat(standin: StandIn, headers=None, **extra) -> Response:
    return standin.request("POST", "/api/v1/chats", {**CHAT, **extra}, headers)


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> Installed:
    """The stand-in built with BUILT_VERSION and installed offline with npm."""
    return install_standin(tmp_path_factory.mktemp("standin-build"), BUILT_VERSION)


@pytest.fixture
def make_standin(installed, tmp_path):
    """Factory: write a config (unless None), start the stand-in, stop it at teardown."""
    started: list[StandIn] = []

    def make(config=VALID_CONFIG, env=None, command=None, home=None, wait=True) -> StandIn:
        home = home or tmp_path / f"home{len(started)}"
        home.mkdir(parents=True, exist_ok=True)
        if config is not None:
            (home / "opengram.config.json").write_text(json.dumps(config, indent=2) + "\n")
        standin = StandIn(command or installed.command, home, env or {})
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
        ({"agents": []}, "Config validation error: at least one agent is required."),
        ({"models": []}, "Config validation error: at least one model is required."),
        ({"agents": [{"id": "a", "defaultModelId": "nope"}]}, 'agent "a" references unknown defaultModelId "nope"'),
        ({"push": {"enabled": True, "subject": "mailto:x@example.org"}}, "push keys and subject are required"),
        ({"security": {"instanceSecretEnabled": True, "instanceSecret": ""}}, "security.instanceSecret is required when enabled"),
        ({"server": {"corsOrigins": ["https://x.example/path"]}}, "must be origins only"),
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


def test_missing_models_fall_back_to_the_defaults_like_upstream(make_standin):
    """Upstream merges its defaults under the file: `models: null` is not an error."""
    standin = make_standin(config={**VALID_CONFIG, "models": None})
    assert standin.request("GET", "/api/v1/config").json()["models"][0]["id"] == "model-default"


@pytest.mark.parametrize(
    ("extra", "subject"),
    [
        ({}, "mailto:opengram@localhost"),
        # Upstream replaces a subject already in the file by the derived one.
        ({"push": {"subject": "mailto:ops@example.org"}}, "mailto:opengram@localhost"),
        ({"server": {"port": 1, "publicBaseUrl": "https://chat.example.org"}}, "https://chat.example.org"),
    ],
)
def test_push_keys_written_at_first_start_and_preserved(make_standin, extra, subject):
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    config = {"server": {"port": 1}, **VALID_CONFIG, "custom": {"z": 1, "a": [1, 2]}, **extra}
    standin = make_standin(config=config)

    text = standin.config_path.read_text()
    written = json.loads(text)
    assert text == json.dumps(written, indent=2) + "\n"
    assert list(written) == list(config) + ([] if "push" in config else ["push"])
    assert {k: v for k, v in written.items() if k != "push"} == {k: v for k, v in config.items() if k != "push"}
    keys = written["push"]
    assert keys["enabled"] is True
    assert keys["subject"] == subject
    public, private = b64url_decode(keys["vapidPublicKey"]), b64url_decode(keys["vapidPrivateKey"])
    assert len(public) == 65 and public[0] == 0x04
    # Like upstream (Node's ecdh.getPrivateKey(), unpadded), a scalar with leading
    # zero bytes comes out shorter: 31 bytes about once in 256 starts.
    assert 1 <= len(private) <= 32
    derived = ec.derive_private_key(int.from_bytes(private, "big"), ec.SECP256R1()).public_key()
    assert derived.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint) == public
    assert "[push] Auto-generated VAPID keys" in standin.log()

    standin.stop()
    standin.start()
    assert standin.config_path.read_text() == text  # keys kept, file not rewritten
    assert "Auto-generated VAPID keys" not in standin.log()


def test_localhost_push_subject_is_repaired_at_start_once_a_public_url_is_known(make_standin):
    standin = make_standin()
    assert json.loads(standin.config_path.read_text())["push"]["subject"] == "mailto:opengram@localhost"
    assert "VAPID subject contains 'localhost'" in standin.log()  # a warning, not a refusal
    standin.stop()
    standin.extra_env["OPENGRAM_PUBLIC_BASE_URL"] = "https://chat.example.org"
    standin.start()
    written = json.loads(standin.config_path.read_text())
    assert written["push"]["subject"] == "https://chat.example.org"
    assert "server" not in written or "publicBaseUrl" not in written["server"]  # the env value is not written
    assert "[push] Repaired VAPID subject: mailto:opengram@localhost → https://chat.example.org" in standin.log()


# --- network ------------------------------------------------------------------------------


def test_health(make_standin):
    standin = make_standin()
    response = standin.request("GET", "/api/v1/health")
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    health = response.json()
    assert health.pop("uptime") >= 0
    assert health == {"service": "opengram", "status": "ok", "version": BUILT_VERSION}


def test_listens_on_all_interfaces_ipv4_and_ipv6(make_standin):
    if not ipv6_loopback_available():
        pytest.skip("no IPv6 loopback on this host")
    standin = make_standin()
    assert f"stand-in: listening on [::]:{standin.port}" in standin.log()
    assert f"OpenGram server listening on http://localhost:{standin.port}" in standin.log()
    for host in ("127.0.0.1", "::1"):
        assert standin.request("GET", "/api/v1/health", host=host).status == 200


def test_port_from_config_when_env_unset(installed, tmp_path):
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    (home / "opengram.config.json").write_text(json.dumps({**VALID_CONFIG, "server": {"port": port}}))
    standin = StandIn(installed.command, home, port=port, port_in_env=False)
    try:
        standin.start()
        assert f"listening on [::]:{port}" in standin.log()
    finally:
        standin.stop()


def test_event_stream_delivers_events_immediately_with_keepalives(make_standin):
    standin = make_standin(env={"OPENGRAM_STANDIN_HEARTBEAT_MS": "200"})
    stream = EventStreamReader(standin)
    try:
        assert stream.response.status == 200
        assert stream.next_block()[1] == ": stream opened"
        for title in ("first", "second", "third"):
            posted_at = time.monotonic()
            created = post_chat(standin, title=title)
            assert created.status == 201
            arrived, block = stream.next_block()
            assert arrived - posted_at < 0.5, f"event arrived {arrived - posted_at:.3f} s after the POST"
            event, data, event_id = parse_event(block)
            assert event == "chat.created"
            assert data["payload"] == {"chatId": created.json()["id"]}
            assert data["id"] == event_id
        assert stream.next_block(timeout=2, skip_keepalives=False)[1] == ": keepalive"
        listed = standin.request("GET", "/api/v1/chats").json()["data"]
        assert sorted(c["title"] for c in listed) == ["first", "second", "third"]
    finally:
        stream.close()


def test_config_file_edits_apply_without_a_restart(make_standin):
    """Upstream reloads the file when it changes; the stand-in reads it per request."""
    standin = make_standin()
    assert standin.request("GET", "/api/v1/config").json()["maxUploadBytes"] == 100_000
    written = json.loads(standin.config_path.read_text())
    standin.config_path.write_text(json.dumps({**written, "maxUploadBytes": 5}, indent=2) + "\n")
    assert standin.request("GET", "/api/v1/config").json()["maxUploadBytes"] == 5


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
        return post_chat(standin, headers=headers)

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
    assert post_chat(standin, headers={"X-Forwarded-For": "198.51.100.1"}).status == 201
    assert post_chat(standin, headers={"X-Real-IP": "198.51.100.2"}).status == 201
    assert rate_limited(post_chat(standin, headers={"X-Forwarded-For": "198.51.100.3"}))
    if ipv6_loopback_available():  # another peer address, still the same bucket
        assert rate_limited(standin.request("POST", "/api/v1/chats", CHAT, host="::1"))


def test_rate_limit_window_resets(make_standin):
    standin = make_standin(env={"OPENGRAM_WRITE_RATE_LIMIT_MAX": "1", "OPENGRAM_WRITE_RATE_LIMIT_WINDOW_MS": "400"})
    assert post_chat(standin).status == 201
    limited = post_chat(standin)
    assert rate_limited(limited)
    assert limited.headers["retry-after"] == "1"
    wait_for(lambda: post_chat(standin).status == 201, 3.0, "the rate-limit window to reset", interval=0.05)


def test_rate_limit_checked_before_the_body_is_read(make_standin):
    standin = make_standin(env={"OPENGRAM_WRITE_RATE_LIMIT_MAX": "1", "OPENGRAM_WRITE_RATE_LIMIT_WINDOW_MS": "60000"})
    assert post_chat(standin).status == 201
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
def test_instance_secret_from_env_or_config(make_standin, source):
    secret = f"og_{source}-secret"
    if source == "env":
        standin = make_standin(env={"OPENGRAM_INSTANCE_SECRET": f"  {secret}  "})  # trimmed, like upstream
    else:
        security = {"instanceSecretEnabled": True, "instanceSecret": secret}
        standin = make_standin(config={**VALID_CONFIG, "security": security})
    bearer = {"Authorization": f"Bearer {secret}"}

    assert post_chat(standin).status == 401
    assert post_chat(standin, headers=bearer).status == 201
    assert standin.request("GET", "/api/v1/chats").status == 200  # reads stay open
    assert standin.request("GET", "/api/v1/events/stream").status == 401
    assert f'"instanceSecret":"{secret}"' in standin.request("GET", "/").body.decode()
    # Upstream logs no request lines: nothing about requests (or a ?token=) reaches the journal.
    standin.request("GET", f"/api/v1/chats?token={secret}")
    assert secret not in standin.log()
    assert "/api/v1/chats" not in standin.log()


# --- persistence, shutdown ----------------------------------------------------------------


def test_data_persists_across_restart(make_standin):
    standin = make_standin()
    chats = [post_chat(standin, title=title).json() for title in ("kept", "also kept")]
    upload = standin.request(
        "POST", f"/api/v1/chats/{chats[0]['id']}/media",
        {"fileName": "f.txt", "contentType": "text/plain", "base64Data": "aGVsbG8="},
    ).json()

    assert standin.stop() == 0
    data = standin.home / "data"
    stored = json.loads((data / "opengram.db").read_text())
    assert sorted(c["id"] for c in stored["chats"]) == sorted(c["id"] for c in chats)
    assert sorted(p.name for p in data.iterdir()) == ["opengram.db", "uploads"]  # no temp files left
    assert (data / upload["storage_path"]).read_bytes() == b"hello"
    assert upload["storage_path"] == f"uploads/{chats[0]['id']}/{upload['id']}.txt"

    standin.start()
    listed = standin.request("GET", "/api/v1/chats").json()["data"]
    assert sorted(c["id"] for c in listed) == sorted(c["id"] for c in chats)
    assert standin.request("GET", f"/api/v1/files/{upload['id']}").body == b"hello"


def test_sigterm_with_a_stuck_request_forces_exit_0_after_two_seconds(make_standin):
    standin = make_standin()
    with socket.create_connection(("127.0.0.1", standin.port), timeout=5) as stuck:
        stuck.sendall(b"POST /api/v1/chats HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        standin.request("GET", "/api/v1/health")  # barrier: the stuck request has been seen
        sent_at = time.monotonic()
        standin.process.send_signal(signal.SIGTERM)
        returncode = standin.process.wait(5)
        elapsed = time.monotonic() - sent_at
    assert 1.8 <= elapsed < 3.5, f"exited after {elapsed:.2f} s"
    assert returncode == 0  # upstream's forced exit is process.exit(0) too
