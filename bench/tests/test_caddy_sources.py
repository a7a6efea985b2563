"""Unit tests of bench/caddy_sources.py's pure parts (no docker): python3 -m pytest bench/tests"""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import caddy_sources as cs  # noqa: E402
import topology  # noqa: E402
from tools.ogd import roles  # noqa: E402


def wrk_run(rps, rnd, errors=0):
    return {"rps": rps, "round": rnd, "p50_ms": 1.0, "p90_ms": 2.0, "p99_ms": 3.0, "errors": errors}


def test_caddy_release_from_both_builds():
    assert cs.caddy_release("v2.11.7 h1:abcdef=") == "2.11.7"
    assert cs.caddy_release("2.6.2") == "2.6.2"
    assert cs.caddy_release("v2.6.2 h1:x\n") == "2.6.2"
    assert cs.caddy_release("sh: caddy: not found") is None
    assert cs.caddy_release("") is None


def test_rotated_starts_each_round_one_later():
    assert cs.rotated([1, 2, 3], 0) == [1, 2, 3]
    assert cs.rotated([1, 2, 3], 1) == [2, 3, 1]
    assert cs.rotated([1, 2, 3], 4) == [2, 3, 1]
    assert cs.rotated([], 2) == []


def test_per_round_ratios_pair_the_same_round():
    direct = [wrk_run(1000, 0), wrk_run(800, 1), wrk_run(500, 2)]
    mine = [wrk_run(400, 1), wrk_run(750, 0)]  # out of order, round 2 missing
    assert cs.per_round_ratios(mine, direct) == [0.75, 0.5]
    assert cs.per_round_ratios(mine, []) == []


def test_ratio_summary_is_the_ratio_of_the_medians():
    direct = [wrk_run(1000, 0), wrk_run(900, 1), wrk_run(1100, 2)]
    mine = [wrk_run(800, 0), wrk_run(600, 1), wrk_run(700, 2)]
    r = cs.ratio_summary(mine, direct)
    assert r["ratio"] == pytest.approx(700 / 1000)
    assert r["per_round"] == pytest.approx([0.8, 600 / 900, 700 / 1100])
    assert r["per_round_min"] == pytest.approx(min(0.8, 600 / 900, 700 / 1100))
    assert r["per_round_max"] == pytest.approx(0.8)
    assert cs.ratio_summary(mine, [])["ratio"] is None


def sample_runs():
    return {
        "health": {cs.DIRECT: [wrk_run(2000, 0), wrk_run(2000, 1)],
                   cs.DIST: [wrk_run(1200, 0), wrk_run(1400, 1)],
                   cs.UPSTREAM: [wrk_run(1600, 0), wrk_run(1500, 1)],
                   "nginx": [wrk_run(1800, 0), wrk_run(1800, 1)],
                   cs.CONTROL: [wrk_run(1990, 0), wrk_run(2010, 1)]},
        "chats": {cs.DIRECT: [wrk_run(1000, 0), wrk_run(1000, 1)],
                  cs.DIST: [wrk_run(700, 0), wrk_run(700, 1)],
                  cs.UPSTREAM: [wrk_run(760, 0), wrk_run(740, 1)],
                  "nginx": [wrk_run(900, 0), wrk_run(900, 1)],
                  cs.CONTROL: [wrk_run(1000, 0), wrk_run(1000, 1)]},
    }


def test_summarize_ratios_to_direct_and_to_debians_caddy():
    s = cs.summarize(sample_runs())
    h = s["health"]
    assert h[cs.DIRECT]["to_direct"]["ratio"] == 1.0
    assert h[cs.DIST]["to_direct"]["ratio"] == pytest.approx(1300 / 2000)
    assert h[cs.UPSTREAM]["rps"] == 1550
    assert h[cs.UPSTREAM]["to_direct"]["ratio"] == pytest.approx(1550 / 2000)
    assert h[cs.UPSTREAM]["to_distribution_caddy"]["ratio"] == pytest.approx(1550 / 1300)
    assert "to_distribution_caddy" not in h[cs.DIST] and "to_distribution_caddy" not in h["nginx"]
    assert h[cs.UPSTREAM]["to_own_host_direct"]["ratio"] == pytest.approx(1550 / 2000)
    assert h[cs.UPSTREAM]["to_own_host_direct"]["per_round"] == pytest.approx([1600 / 1990, 1500 / 2010])
    assert "to_own_host_direct" not in h[cs.DIST]
    assert s["chats"]["nginx"]["to_direct"]["per_round"] == [0.9, 0.9]


def test_verdict_per_endpoint_is_a_ratio_not_a_time():
    v = cs.verdict(cs.summarize(sample_runs()))
    assert v["path"] == cs.UPSTREAM and v["aim"] == 0.75 and v["connections"] == 8
    assert v["health"]["ratio"] == pytest.approx(0.775) and v["health"]["reaches"] is True
    assert (v["health"]["rounds_reaching"], v["health"]["rounds"]) == (2, 2)  # 0.8, 0.75 (>= counts)
    assert v["chats"]["ratio"] == pytest.approx(0.75) and v["chats"]["reaches"] is True
    assert (v["chats"]["rounds_reaching"], v["chats"]["rounds"]) == (1, 2)  # 0.76 yes, 0.74 no
    empty = cs.verdict({"health": {}})
    assert empty["health"]["reaches"] is None and empty["health"]["rounds"] == 0


def test_problems_flag_missing_rounds_and_errors_only():
    runs = sample_runs()
    assert cs.problems(cs.summarize(runs), rounds=2) == []
    runs["chats"][cs.UPSTREAM] = [wrk_run(700, 0, errors=3)]
    out = cs.problems(cs.summarize(runs), rounds=2)
    assert out == ["chats through caddy-upstream: 1 of 2 rounds measured",
                   "chats through caddy-upstream: 3 wrk errors"]


def test_markdown_table_side_by_side():
    s = cs.summarize(sample_runs())
    results = {"throughput": s, "verdict": cs.verdict(s),
               "versions": {cs.CADDY_DIST.name: {"caddy": "2.6.2"},
                            cs.CADDY_UPSTREAM.name: {"caddy": "v2.11.7 h1:x"}}}
    md = cs.markdown_table(results).splitlines()
    assert md[0] == "| at 8 connections, keep-alive | health | chat list |"
    assert md[2] == "| direct (HTTP to Opengram), requests/s | 2000 | 1000 |"
    assert md[3] == "| Debian's Caddy 2.6.2 (`distribution`) | 1300: 65 % | 700: 70 % |"
    assert md[4] == ("| upstream Caddy 2.11.7 (`upstream`) | 1550: 78 %, 1.19x Debian's "
                     "| 750: 75 %, 1.07x Debian's |")
    assert md[-1] == ("| upstream Caddy >= 75 % of direct | 78 %: reached (2 of 2 rounds); 78 % of its own "
                      "host's direct | 75 %: reached (1 of 2 rounds); 75 % of its own host's direct |")


def test_inventory_differs_only_in_the_caddy_source(tmp_path, monkeypatch):
    monkeypatch.setattr(roles, "role_default", lambda key, **kw: "0.2.1")
    path = topology.write_inventory(tmp_path, list(cs.HOSTS), cs.HOST_VARS, opengram_vars=cs.OPENGRAM_VARS)
    inv = json.loads(path.read_text())["all"]["children"]
    og = inv["opengram"]["hosts"]
    assert list(inv["vendor_repo"]["hosts"]) == ["ogdbench-vendor"]
    assert set(og) == {"ogdbench-caddy-dist", "ogdbench-caddy-upstream", "ogdbench-ours-nginx"}
    dist, up = og["ogdbench-caddy-dist"], og["ogdbench-caddy-upstream"]
    assert (dist["opengram_caddy_source"], up["opengram_caddy_source"]) == ("distribution", "upstream")
    differ = {k for k in set(dist) | set(up) if dist.get(k) != up.get(k)}
    assert differ == {"opengram_caddy_source", "opengram_domain"}
    assert dist["opengram_proxy"] == up["opengram_proxy"] == "caddy"
    gv = inv["opengram"]["vars"]
    assert gv["opengram_caddy_repository_url"] == "https://vendor.opengram.test/caddy/stable/deb/debian"
    assert gv["opengram_caddy_repository_key_url"].endswith("/caddy/stable/gpg.key")
    assert all(h.startswith("ogdbench-") for g in inv.values() for h in g["hosts"])
