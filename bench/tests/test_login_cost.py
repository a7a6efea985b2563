"""Unit tests of bench/login_cost.py's pure parts and bench/client.py's page parsing (no docker)."""

import gzip
import sys
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import client  # noqa: E402
import login_cost as lc  # noqa: E402


def snapshot(**procs):
    return {"procs": {pid: (comm, ticks) for pid, (comm, ticks) in procs.items()}, "busy": 0, "total": 0}


def sample(proxy_s, loads=20, requests=120, statuses=None, node_s=0.5):
    return {"loads": loads, "requests": requests, "statuses": statuses or {"200": requests},
            "proxy_s": proxy_s, "node_s": node_s, "bytes_on_wire": 1000 * requests}


def test_page_files_are_the_same_site_paths_in_order_once():
    html = ('<link rel="icon" href="/favicon.svg"><script type="module" src="/assets/index-a1.js"></script>'
            '<link rel="stylesheet" href="/assets/index-b2.css"><a href="https://example.org/x">'
            '<script src="//cdn.example/x.js"></script><link href="/assets/index-b2.css">')
    assert client.page_files(html) == ["/favicon.svg", "/assets/index-a1.js", "/assets/index-b2.css"]


def test_decoded_reads_gzip_and_deflate_and_refuses_others():
    assert client.decoded(gzip.compress(b"page"), "gzip") == b"page"
    assert client.decoded(zlib.compress(b"page"), "deflate") == b"page"
    assert client.decoded(b"page", "") == b"page"
    with pytest.raises(ValueError):
        client.decoded(b"x", "br")


def test_cpu_seconds_per_process_kind_of_processes_seen_twice():
    tck = lc.CLK_TCK
    before = snapshot(**{"1": ("nginx", 10), "2": ("nginx", 5), "3": ("node", 0)})
    after = snapshot(**{"1": ("nginx", 10 + tck), "2": ("nginx", 5 + tck), "3": ("node", tck // 2),
                        "4": ("nginx", 999)})
    assert lc.cpu_seconds(before, after) == {"nginx": 2.0, "node": pytest.approx(0.5, abs=0.01)}


def test_summarize_totals_and_per_load():
    s = lc.summarize([sample(8.0), sample(7.0)])
    assert (s["rounds"], s["loads"], s["requests"]) == (2, 40, 240)
    assert s["proxy_ms_per_load"] == pytest.approx(375.0)
    assert s["proxy_ms_per_request"] == pytest.approx(62.5)
    assert s["per_round_proxy_ms_per_load"] == [400.0, 350.0]
    wrong = lc.summarize([sample(2.0, loads=0, requests=30, statuses={"401": 30})])
    assert wrong["proxy_ms_per_load"] is None and wrong["proxy_ms_per_request"] == pytest.approx(66.7, abs=0.1)


def test_ratio_is_session_over_nosession_cpu():
    summary = {"nginx": {"session": lc.summarize([sample(0.4)]), "nosession": lc.summarize([sample(8.0)])},
               "caddy": {"session": lc.summarize([sample(0.3)]), "nosession": lc.summarize([sample(0.0)])}}
    r = lc.ratios(summary)
    assert r["nginx"]["session_over_nosession"] == pytest.approx(0.05)
    assert r["caddy"]["session_over_nosession"] is None


def test_problems_name_missing_rounds_and_unexpected_answers():
    summary = {"nginx": {"session": lc.summarize([sample(0.4)]),
                         "wrong": lc.summarize([sample(1.0, loads=0, requests=3, statuses={"401": 2, "429": 1})])}}
    out = lc.problems(summary, rounds=2)
    assert any("session: 1 of 2 rounds" in p for p in out)
    assert any("wrong: answers" in p and "429" in p for p in out)
    assert lc.problems({"nginx": {"session": lc.summarize([sample(0.4)])}}, rounds=1) == []
