"""The Molecule probe (molecule/shared/probes/probe.py) and the bench client
(bench/client.py) against an API double of Opengram 0.2.1 (fake_opengram.py):
they create chats as the real app wants them, upload into a chat's media,
match events by payload.chatId, send the secret as a Bearer header (the one
exception: the browser's ?token= stream check), and their SSE timing can fail."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_opengram import AGENT, MODEL, SECRET, FakeOpengram  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PROBE = ROOT / "molecule" / "shared" / "probes" / "probe.py"
BENCH = ROOT / "bench" / "client.py"


def run(script, *args, timeout=60):
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def probe(app, *args):
    code, out, err = run(PROBE, args[0], "--base", app.base, "--ca", "unused", *args[1:])
    return code, (json.loads(out) if out.strip() else None), err


def carriers(app):
    """How each request carried the secret, except the unauthenticated reads."""
    return [(m, p, how) for m, p, how in app.seen if not p.startswith(("/api/v1/config", "/api/v1/health"))]


def test_probe_sse_events_arrive_one_by_one_with_a_bearer_secret():
    with FakeOpengram() as app:
        code, report, err = probe(app, "sse", "--token", SECRET, "--events", "3", "--interval", "0.3")
    assert code == 0, err
    assert report["status"] == 200
    events = report["events"]
    assert [e["post_status"] for e in events] == [201, 201, 201]
    assert {e["chat"] for e in events} == set(app.chats), "events were not matched to the chats created"
    assert all(e["delay"] is not None and e["delay"] < 0.2 for e in events), events
    assert all(how == "bearer" for _, _, how in carriers(app)), app.seen
    assert not any("token=" in path for _, path, _ in app.seen)
    # The agent and model came from GET /api/v1/config.
    assert all(c["agent_ids"] == [AGENT] and c["model_id"] == MODEL for c in app.chats.values())


def test_probe_sse_query_token_is_the_browser_path_only():
    with FakeOpengram() as app:
        code, report, err = probe(app, "sse", "--token", SECRET, "--query-token", "--agent", AGENT,
                                  "--model", MODEL, "--events", "1", "--interval", "0.1")
    assert code == 0, err
    assert report["events"][0]["arrived"] is not None
    streams = [(path, how) for method, path, how in app.seen if path.startswith("/api/v1/events/stream")]
    assert len(streams) == 1 and streams[0][1] == "query", streams
    # The chats are still created with the header.
    assert [how for m, p, how in app.seen if m == "POST"] == ["bearer"]


def test_probe_sse_reports_events_a_proxy_held_back():
    """The negative control: events held and sent in one batch show as late,
    so the check in test_public.py (delay < 0.5 s, gaps > 0.5 s) fails."""
    with FakeOpengram(hold=1.5) as app:
        code, report, err = probe(app, "sse", "--token", SECRET, "--events", "3", "--interval", "0.3")
    assert code == 0, err
    events = report["events"]
    assert all(e["arrived"] is not None for e in events), events
    assert events[0]["delay"] > 1.0, events
    gaps = [b["arrived"] - a["arrived"] for a, b in zip(events, events[1:])]
    assert all(gap < 0.1 for gap in gaps), gaps


def test_probe_sse_without_the_secret_is_refused():
    with FakeOpengram() as app:
        code, report, _ = probe(app, "sse", "--events", "1")
    assert code == 1 and report["status"] == 401


def test_probe_writes_and_chat():
    with FakeOpengram() as app:
        code, report, err = probe(app, "writes", "--token", SECRET, "--count", "3", "--forge")
        assert code == 0, err
        assert report["statuses"] == [201, 201, 201]
        code, report, err = probe(app, "chat", "--token", SECRET, "--title", "hello")
        assert code == 0, err
        assert report["status"] == 201 and report["chat"]["title"] == "hello"
        code, report, err = probe(app, "writes", "--count", "1")
        assert report["statuses"] == [401]
    assert len(app.chats) == 4


@pytest.mark.parametrize("token", [SECRET])
def test_bench_sse_times_every_event(token):
    with FakeOpengram() as app:
        code, out, err = run(BENCH, "sse", "--url", app.base, "--post-url", app.base, "--token", token,
                             "--count", "3", "--interval", "0.05")
    assert code == 0, err
    result = json.loads(out)
    assert result["errors"] == [] and len(result["samples"]) == 3, result
    for sample in result["samples"]:
        assert 0 <= sample["send_to_arrival_ms"] < 1000
        assert -5 < sample["created_to_arrival_ms"] < 1000, sample
    assert all(how == "bearer" for _, _, how in carriers(app)), app.seen


def test_bench_upload_goes_into_a_chat_and_is_stored_whole(tmp_path):
    data = tmp_path / "upload.bin"
    data.write_bytes(bytes(range(256)) * 1000)
    with FakeOpengram() as app:
        code, out, err = run(BENCH, "upload", "--url", app.base, "--token", SECRET, "--file", str(data),
                             "--count", "2")
    assert code == 0, err
    result = json.loads(out)
    assert result["errors"] == [] and [s["stored_bytes"] for s in result["samples"]] == [256000, 256000], result
    (chat_id,) = app.chats
    assert [m["chat_id"] for m in app.media.values()] == [chat_id, chat_id]
    assert all(m["bytes"] == data.read_bytes() for m in app.media.values())
    assert all(how == "bearer" for _, _, how in carriers(app)), app.seen


def test_bench_reports_a_refused_stream():
    with FakeOpengram() as app:
        code, out, err = run(BENCH, "sse", "--url", app.base, "--post-url", app.base, "--count", "1")
    assert code == 0, err
    assert json.loads(out)["error"] == "stream answered 401"
