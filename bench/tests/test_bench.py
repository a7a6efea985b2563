"""Unit tests of the bench's pure parts (no docker): python3 -m pytest bench/tests"""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import configs  # noqa: E402
import measure  # noqa: E402
import report  # noqa: E402
import topology  # noqa: E402
from tools.ogd import recap as ogd_recap, roles  # noqa: E402

NGINX_SITE = """# Ansible managed
server {
    listen 80 default_server;
    listen [::]:80 default_server;
    server_name ours-nginx.ogdbench.test;

    location ^~ /.well-known/acme-challenge/ {
        root /var/www/acme;
    }

    location / {
        return 301 https://$host$request_uri;
    }
}

server {
    listen 443 ssl default_server;
    listen [::]:443 ssl default_server;
    http2 on;
    server_name ours-nginx.ogdbench.test;
    ssl_certificate /etc/letsencrypt/live/x/fullchain.pem;

    location / {
        proxy_pass http://127.0.0.1:3000;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_buffering off;
    }
}
"""


KEEPALIVE_SITE = NGINX_SITE.replace(
    "# Ansible managed\n",
    "# Ansible managed\nupstream opengram_upstream {\n    server 127.0.0.1:3000;\n"
    "    keepalive 32;\n    keepalive_timeout 4s;\n}\n").replace(
    "proxy_pass http://127.0.0.1:3000;", "proxy_pass http://opengram_upstream;")


def test_server_blocks():
    blocks = configs.server_blocks(KEEPALIVE_SITE)
    assert len(blocks) == 2
    assert blocks[0].startswith("server {") and "listen 80 default_server;" in blocks[0]
    assert blocks[1].rstrip().endswith("}") and "location / {" in blocks[1]


def test_variant_adds_keepalive_to_a_site_without_it():
    name, _, out = configs.nginx_variant(NGINX_SITE, port=8443)
    assert name == "ours-nginx+keepalive"
    assert "upstream ogdbench_keepalive {\n    server 127.0.0.1:3000;\n    keepalive 16;" in out
    assert "listen 8443 ssl;" in out
    assert "listen 80" not in out and ":443" not in out and "listen 443" not in out
    assert "proxy_pass http://ogdbench_keepalive;" in out
    assert "acme-challenge" not in out
    assert out.count("server {") == 1


def test_variant_removes_keepalive_from_a_site_with_it():
    name, _, out = configs.nginx_variant(KEEPALIVE_SITE, port=8443)
    assert name == "ours-nginx-no-keepalive"
    assert "upstream" not in out.split("\n", 1)[1]
    assert "proxy_pass http://127.0.0.1:3000;" in out
    assert "listen 8443 ssl;" in out and "listen 443" not in out
    assert out.count("server {") == 1


def test_variant_removes_keepalive_from_every_location_of_a_gated_site():
    # The access gate puts the API, the event stream and the web app in
    # locations of their own, each with its proxy_pass.
    gated = KEEPALIVE_SITE.replace(
        "    location / {", "    location /api/ {\n        proxy_pass http://opengram_upstream;\n    }\n\n    location / {")
    name, _, out = configs.nginx_variant(gated, port=8443)
    assert name == "ours-nginx-no-keepalive"
    assert "location /api/ {" in out and out.count("proxy_pass http://127.0.0.1:3000;") >= 2
    assert "opengram_upstream" not in out


def test_nginx_ceiling_answers_health_itself_over_the_same_tls():
    out = configs.nginx_ceiling(KEEPALIVE_SITE, port=8444)
    assert out.count("server {") == 1 and "listen 8444 ssl;" in out and "listen 443" not in out
    assert "ssl_certificate /etc/letsencrypt/live/x/fullchain.pem;" in out
    health = out.index("location = /api/v1/health {")
    assert "return 200 '%s';" % topology.CEILING_BODY in out[health:out.index("location / {")]
    assert "acme-challenge" not in out
    with pytest.raises(topology.BenchError):
        configs.nginx_ceiling(KEEPALIVE_SITE.replace("    location / {\n        proxy_pass", "    location /x {\n        proxy_pass"))


def test_nginx_ceiling_replaces_the_gated_sites_own_health_location():
    gated = KEEPALIVE_SITE.replace(
        "    location / {", "    location = /api/v1/health {\n        proxy_pass http://opengram_upstream;\n"
        "        if ($x) { return 403; }\n    }\n\n    location / {")
    out = configs.nginx_ceiling(gated, port=8444)
    assert out.count("location = /api/v1/health {") == 1, "a second health location: nginx -t refuses it"
    health = out.index("location = /api/v1/health {")
    assert "return 200 '%s';" % topology.CEILING_BODY in out[health:out.index("location / {")]
    assert "if ($x)" not in out and out.count("{") == out.count("}")


def test_caddy_ceiling_uses_the_given_certificate_without_redirects():
    out = configs.caddy_ceiling("c.test", "/s/c.test.crt", "/s/c.test.key", port=8444)
    assert "admin off" in out and "auto_https disable_redirects" in out
    assert "https://c.test:8444 {" in out and "tls /s/c.test.crt /s/c.test.key" in out
    assert "respond /api/v1/health `%s` 200" % topology.CEILING_BODY in out


CADDY_SITE = """# Ansible managed
ours-caddy.ogdbench.test {
	# ACME for this site only (other sites of this Caddy keep their own issuers).
	tls bench@ogdbench.test {
		ca https://pebble:14000/dir
		ca_root /etc/caddy/opengram-deploy/acme-ca.pem
	}
	header Strict-Transport-Security "max-age=63072000"
	reverse_proxy 127.0.0.1:3000 {
		# comment
		transport http {
			compression off
		}
		header_up X-Forwarded-For {remote_host}
	}
}
"""


def test_caddy_variant_toggles_transport_compression_both_ways():
    args = ("ours-caddy.ogdbench.test", "/c.crt", "/c.key")
    name, _, conf = configs.caddy_variant(CADDY_SITE, *args)
    assert name == "ours-caddy-compressing"
    assert "compression off" not in conf and "transport http" not in conf
    assert "https://ours-caddy.ogdbench.test:8445 {" in conf
    assert "\ttls /c.crt /c.key\n" in conf and "pebble" not in conf
    assert "admin off" in conf and "header_up X-Forwarded-For" in conf
    without = CADDY_SITE.replace("\t\ttransport http {\n\t\t\tcompression off\n\t\t}\n", "")
    name, _, conf = configs.caddy_variant(without, *args)
    assert name == "ours-caddy+compression-off"
    assert "\treverse_proxy 127.0.0.1:3000 {\n\t\ttransport http {\n\t\t\tcompression off\n\t\t}\n" in conf
    with pytest.raises(topology.BenchError):
        configs.caddy_variant(CADDY_SITE, "other.example", "/c.crt", "/c.key")


def test_site_has_upstream_keepalive():
    assert not configs.site_has_upstream_keepalive(NGINX_SITE)
    assert configs.site_has_upstream_keepalive(KEEPALIVE_SITE)
    assert not configs.site_has_upstream_keepalive("upstream u {\n    server 127.0.0.1:3000;\n}\n")


def test_variant_refuses_an_unexpected_site():
    with pytest.raises(topology.BenchError):
        configs.nginx_variant(NGINX_SITE.replace('proxy_set_header Connection "";', ""))
    with pytest.raises(topology.BenchError):
        configs.nginx_variant("server { listen 80; }")


def test_parse_wrk():
    doc = {"requests": 5000, "duration_us": 2_000_000, "bytes": 1,
           "errors": {"connect": 0, "read": 0, "write": 0, "status": 2, "timeout": 0},
           "latency_us": {"min": 100, "mean": 400.0, "max": 9000, "stdev": 1.0,
                          "p50": 350, "p90": 700, "p99": 2500, "p999": 8000}}
    r = measure.parse_wrk("Running 2s test\n  1 threads\nOGDBENCH_JSON " + json.dumps(doc) + "\n")
    assert r["rps"] == 2500
    assert (r["p50_ms"], r["p90_ms"], r["p99_ms"]) == (0.35, 0.7, 2.5)
    assert r["errors"] == 2
    with pytest.raises(topology.BenchError):
        measure.parse_wrk("no json here")


def test_parse_profile_and_recap():
    out = """PLAY RECAP *********
ogdbench-fleet-1           : ok=60   changed=25   unreachable=0    failed=0    skipped=20
ogdbench-fleet-2           : ok=60   changed=24   unreachable=0    failed=0    skipped=20

TASKS RECAP ********
Monday 01 January 2025  00:00:00 +0000 (0:00:00.100)       0:03:10.000 ******
===============================================================================
opengram : Install Node.js, npm and the native-module build tools ----- 120.50s
Gathering Facts ----------------------------------------------------------- 3.25s
caddy : Install Caddy ----------------------------------------------------- 2.00s
"""
    prof = ogd_recap.parse_profile(out)
    assert [t["task"] for t in prof] == [
        "opengram : Install Node.js, npm and the native-module build tools",
        "Gathering Facts", "caddy : Install Caddy"]
    assert prof[0]["seconds"] == 120.5
    recap = ogd_recap.parse_recap(out)
    assert recap["ogdbench-fleet-2"]["changed"] == 24
    assert ogd_recap.parse_profile("no recap") == []


def test_percentile_and_median():
    assert measure.percentile([], 95) is None
    assert measure.percentile([1, 2, 3, 4, 5], 50) == 3
    assert measure.percentile([1, 2, 3, 4, 5], 95) == pytest.approx(4.8)
    assert measure.median([3, 1, 2]) == 2


def test_aims_from_results():
    results = {
        "proxy": {"throughput": {"ours-nginx": {"8": {"ratio_to_direct": 0.86, "ratio_to_guide": 1.2}},
                                 "ours-caddy": {"8": {"ratio_to_direct": 0.74, "ratio_to_guide": 1.4}}},
                  "throughput_chats": {"ours-nginx": {"8": {"ratio_to_direct": 0.84, "ratio_to_guide": 1.3}},
                                       "ours-caddy": {"8": {"ratio_to_direct": 0.75, "ratio_to_guide": None}}},
                  "sse": {"ours-caddy": {"delay_median_minus_direct_ms": 1.0},
                          "ours-nginx": {"delay_median_minus_direct_ms": 1.1}}},
        "deploy": {"runs": {"no-change-1": {"hosts": 1, "seconds": 15.0}},
                   "no_change_series": {"by_hosts": {"1": {"seconds": 9.0}, "8": {"seconds": 72.0}}}},
    }
    met = [(a["aim"].split(" of direct")[0].split(" at 8")[0], "guide" in a["aim"], a["met"])
           for a in report.aims(results)]
    assert met[:10] == [
        ("ours-nginx health throughput", False, True), ("ours-nginx health throughput", True, False),
        ("ours-caddy health throughput", False, False), ("ours-caddy health throughput", True, True),
        ("ours-nginx chat list throughput", False, False), ("ours-nginx chat list throughput", True, True),
        ("ours-caddy chat list throughput", False, True), ("ours-caddy chat list throughput", True, None),
        ("ours-caddy SSE delay median within 1 ms", False, True),
        ("ours-nginx SSE delay median within 1 ms", False, False)]
    # the deployment-cost aims follow: no-change-1 under 20 s and at most 10 s per host, the series
    assert [m[2] for m in met[10:]] == [True, False, True]
    series_aim = [a for a in report.aims(results) if "8 hosts" in a["aim"]]
    assert [a["value"] for a in series_aim] == [9.0]


def test_add_ratios_for_both_endpoints():
    result = {"throughput": {"direct": {"8": {"rps": 1000.0}}, "ours-nginx": {"8": {"rps": 900.0}},
                             "guide-nginx": {"8": {"rps": 600.0}}},
              "throughput_chats": {"direct": {"8": {"rps": 500.0}}, "ours-caddy": {"8": {"rps": 400.0}}},
              "sse": {"direct": {"delay_median_ms": 0.1, "created_median_ms": 2.0},
                      "ours-nginx": {"delay_median_ms": 0.4, "created_median_ms": None}}}
    measure.add_ratios(result, "direct")
    assert result["throughput"]["ours-nginx"]["8"]["ratio_to_direct"] == pytest.approx(0.9)
    assert result["throughput"]["ours-nginx"]["8"]["ratio_to_guide"] == pytest.approx(1.5)
    assert result["throughput"]["guide-nginx"]["8"]["ratio_to_guide"] is None
    assert result["throughput_chats"]["ours-caddy"]["8"]["ratio_to_direct"] == pytest.approx(0.8)
    assert result["throughput_chats"]["ours-caddy"]["8"]["ratio_to_guide"] is None  # no guide measured
    assert result["sse"]["ours-nginx"]["delay_median_minus_direct_ms"] == pytest.approx(0.3)
    assert result["sse"]["ours-nginx"]["created_median_minus_direct_ms"] is None


def test_parse_times_reads_the_childrens_cpu():
    out = "OGDBENCH_JSON {}\n0m0.010000s 0m0.020000s\n1m2.500000s 0m0.250000s\n"
    assert measure.parse_times(out) == pytest.approx(62.75)
    assert measure.parse_times("no times here") is None


def test_cpu_per_request_attributes_ticks_by_process():
    stat = "4242 (node) S 1 2 3 4 5 6 7 8 9 10 {u} {s} 0 0 20 0 11"
    assert measure.proc_ticks(stat.format(u=150, s=50)) == 200
    assert measure.proc_ticks("7 (a b) c) S 1 2 3 4 5 6 7 8 9 10 3 4 0") == 7  # ')' in the name
    assert measure.machine_ticks("cpu  100 0 50 800 50 0 10 0 0 0\ncpu0 1\n") == (160, 1010)
    before = {"procs": {1: ("node", 100), 2: ("nginx", 10), 3: ("nginx", 0)}, "busy": 1000, "total": 0}
    after = {"procs": {1: ("node", 300), 2: ("nginx", 60), 4: ("caddy", 999)}, "busy": 1500, "total": 0}
    per = measure.cpu_per_request(before, after, {"requests": 1000, "wrk_cpu_s": 1.0})
    tick_us = 1e6 / measure.CLK_TCK
    assert per["node"] == pytest.approx(200 * tick_us / 1000)
    assert per["nginx"] == pytest.approx(50 * tick_us / 1000)
    assert per["caddy"] == 0  # not there before the run: not counted
    assert per["wrk"] == pytest.approx(1000.0)
    assert per["busy"] == pytest.approx(500 * tick_us / 1000)
    assert per["rest"] == pytest.approx(per["busy"] - per["node"] - per["nginx"] - per["wrk"])
    assert measure.cpu_per_request(before, after, {"requests": 0}) == {}


def test_figure_names_one_per_question():
    assert report.figure_names({"proxy": {}}) == []
    assert report.figure_names({"proxy": {"x": 1}}) == ["throughput.png", "sse.png"]
    # the deployment cost's picture is plot_deploy.py's (report.DEPLOY_PNG)
    assert report.figure_names({"proxy": {"x": 1}, "deploy": {"runs": {}}}) == ["throughput.png", "sse.png"]


def test_results_md_keeps_text_outside_the_markers(tmp_path):
    path = tmp_path / "RESULTS.md"
    report.update_results_md(path, "first")
    text = path.read_text()
    assert "first" in text
    path.write_text("# Title\n\nhand-written analysis\n\n" + text[text.index(report.RESULTS_BEGIN):]
                    + "\nmore notes\n")
    report.update_results_md(path, "second")
    text = path.read_text()
    assert "second" in text and "first" not in text
    assert "hand-written analysis" in text and "more notes" in text


def test_inventory_shape(tmp_path, monkeypatch):
    monkeypatch.setattr(roles, "role_default", lambda key, **kw: "0.2.1")
    hosts = [topology.PEBBLE, topology.CLIENT, *topology.PROXY_HOSTS]
    inv = json.loads(topology.write_inventory(tmp_path, hosts).read_text())["all"]["children"]
    og = inv["opengram"]["hosts"]
    assert {h: v["opengram_proxy"] for h, v in og.items()} == {
        "ogdbench-ours-caddy": "caddy", "ogdbench-ours-nginx": "nginx",
        "ogdbench-guide-caddy": "none", "ogdbench-guide-nginx": "none"}
    assert list(inv["guide_nginx"]["hosts"]) == ["ogdbench-guide-nginx"]
    assert list(inv["acme"]["hosts"]) == ["ogdbench-pebble"]
    assert inv["opengram"]["vars"]["opengram_write_rate_limit_max"] >= 100000
    assert all(h.startswith("ogdbench-") for g in inv.values() for h in g["hosts"])


def test_problems_flags_missing_measurements_not_timings():
    settings = {"handshakes": 2, "rounds": 1, "uploads": 1}
    ok = {"throughput": {"1": {"rps": 10.0, "errors": 0}},
          "handshake": {"n": 2}, "sse": {"n": 5, "expected": 5},
          "upload": {"n": 1, "stored_ok": True}}
    bad = {"throughput": {"1": {"rps": 0.5, "errors": 3}},
           "handshake": {"n": 1}, "sse": {"n": 4, "expected": 5},
           "upload": {"n": 1, "stored_ok": False}}
    results = {"settings": settings, "paths": [{"name": "a"}, {"name": "b"}],
               "proxy": {k: {"a": ok[k], "b": bad[k]} for k in ok},
               "deploy": {"runs": {"no-change-1": {"changed": 1}, "cold-1": {"changed": 20}},
                          "no_change_series": {"points": [
                              {"name": "no-change-1", "changed": 1},
                              {"name": "no-change-scale-2-round-1", "changed": 0},
                              {"name": "no-change-scale-4-round-2", "changed": 3}]}}}
    found = report.problems(results)
    assert all(f.startswith(("b:", "no-change-1:", "no-change-scale-4-round-2:")) for f in found)
    assert len(found) == 6  # no-change-1 once, though it is also the smoke series' point
    # the chat list endpoint is checked as well
    results["proxy"]["throughput_chats"] = {"a": {"8": {"rps": 0.0, "errors": 0}}}
    assert any(f.startswith("a: wrk") for f in report.problems(results))



def test_scaling_slope_steps_and_fit():
    sc = measure.scaling({1: 10.0, 2: 11.0, 4: 15.0, 8: 24.0})
    assert sc["per_extra_host"] == pytest.approx(2.0)  # (24 - 10) / 7
    assert [s["per_extra_host"] for s in sc["steps"]] == pytest.approx([1.0, 2.0, 2.25])
    # least squares through (1,10) (2,11) (4,15) (8,24): Sxy 59 / Sxx 28.75
    assert sc["fit_slope"] == pytest.approx(59 / 28.75)
    assert sc["fit_intercept"] == pytest.approx(15 - 59 / 28.75 * 3.75)
    exact = measure.scaling({8: 40.0, 1: 5.0})
    assert exact["per_extra_host"] == pytest.approx(5.0)
    assert exact["fit_slope"] == pytest.approx(5.0) and exact["fit_intercept"] == pytest.approx(0.0)
    assert measure.scaling({1: 3.0})["per_extra_host"] is None
    assert measure.scaling({})["steps"] == []


def test_series_order_alternates():
    assert measure.series_order((4, 1, 2, 8), 3) == [[1, 2, 4, 8], [8, 4, 2, 1], [1, 2, 4, 8]]
    assert measure.series_order((1,), 1) == [[1]]


def point(hosts, seconds, ctrl, host=None, rnd=1, changed=0):
    return {"name": f"p{hosts}-{rnd}", "hosts": hosts, "round": rnd, "changed": changed,
            "seconds": seconds, "controller_cpu": ctrl, "cpu_user": ctrl, "cpu_sys": 0.0,
            "host_cpu": host, "engine_cpu": 1.0}


def test_series_summary_medians_and_slopes():
    pts = [point(1, 10.0, 4.0, 2.0, 1), point(1, 30.0, 5.0, 2.0, 2), point(1, 12.0, 6.0, 2.0, 3),
           point(8, 40.0, 18.0, 16.0, 1), point(8, 47.0, 19.0, 16.0, 2), point(8, 44.0, 20.0, None, 3)]
    out = measure.series_summary(pts)
    assert out["by_hosts"]["1"]["seconds"] == 12.0  # the median; the 30 s outlier does not count
    assert out["by_hosts"]["8"]["controller_cpu"] == 19.0
    assert out["by_hosts"]["8"]["runs"] == 3
    assert out["scaling"]["seconds"]["per_extra_host"] == pytest.approx((44.0 - 12.0) / 7)
    assert out["scaling"]["controller_cpu"]["per_extra_host"] == pytest.approx(2.0)
    # a metric missing in one round is not given as a median of the others
    assert out["by_hosts"]["8"]["host_cpu"] is None
    assert out["scaling"]["host_cpu"]["per_extra_host"] is None


def test_cpu_readers(tmp_path):
    # fields 14 and 15 (utime, stime) of proc(5), after a comm with a space and a ')'
    stat = "1234 (shim (x) y) S 1 2 3 4 5 6 7 8 9 10 250 40 7 7 20"
    assert measure.proc_cpu_ticks(stat) == 290
    v1 = tmp_path / "cpuacct.usage"
    v1.write_text("2500000000\n")
    v2 = tmp_path / "cpu.stat"
    v2.write_text("usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n")
    assert measure.read_cgroup_cpu(v1) == pytest.approx(2.5)
    assert measure.read_cgroup_cpu(v2) == pytest.approx(1.5)
    assert measure.containers_cpu([v1, v2]) == pytest.approx(4.0)
    assert measure.containers_cpu([v1, tmp_path / "gone"]) is None
    assert measure.containers_cpu(None) is None
    tck = __import__("os").sysconf("SC_CLK_TCK")
    # pid 2 exited (lost), pid 3 started in between (all of its ticks count)
    assert measure.engine_cpu_delta({1: 100, 2: 50}, {1: 100 + tck, 3: tck}) == pytest.approx(2.0)


def fake_deploy_results(sizes=(1, 2, 4, 8)):
    pts = [point(n, 8.0 + 3.0 * n, 5.0 + 2.0 * n, 2.0 * n, 1) for n in sizes]
    run = {"hosts": 1, "seconds": 20.0, "changed": 0, "controller_cpu": 9.0, "host_cpu": 4.0,
           "engine_cpu": 3.0, "profile_top10": [{"task": "Install Node.js", "seconds": 50.0}]}
    return {"mode": "full", "started": "2026-11-30T21:00:00+00:00", "duration_s": 600,
            "settings": {"cold": True, "no_change_hosts": list(sizes), "no_change_rounds": 1},
            "machine": {"cores": 2, "cpu_model": "x", "ram_gib": 1, "kernel": "k", "os": "o",
                        "docker_engine": "d", "python": "3"},
            "noise": {"other_containers_at_start": 0, "load_samples": [{"load1": 1.0}]},
            "tree": {"commit": "abc", "modified": []},
            "deploy": {"runs": {"no-change-1": run, "cold-1": {**run, "seconds": 80.0, "changed": 20}},
                       "connection_overhead": {},
                       "no_change_series": {"image": "img", "points": pts,
                                            **measure.series_summary(pts)}}}


def test_deploy_markdown_has_the_slope_and_the_core_bound():
    text = report.deploy_markdown(fake_deploy_results(), report.DEPLOY_PNG)
    assert "![deployment cost](results-deploy.png)" in text
    row = next(ln for ln in text.splitlines() if ln.startswith("| per extra host (1->8)"))
    assert "| 3.00 |" in row and "| 2.00 |" in row  # wall, controller CPU per extra host
    assert "each extra host adds 2.00 s of controller CPU and 3.00 s of wall time" in text
    # at 8 hosts: 21 + 16 + 1 CPU seconds over 2 cores
    assert "needed 38.0 CPU seconds in all" in text and "at least 19.0 s on 2 cores" in text
    assert "kept the cores 59% busy" in text and "the rest of the wall time is waiting" in text


def test_deploy_tables_of_a_smoke_run_have_no_slope():
    results = fake_deploy_results(sizes=(1,))
    text = report.tables(results, md=False)
    assert "per extra host" not in text and "No-change site.yml on 1..N" in text


FLEET_LOG = """\
2026-12-07 10:00:00,000 p=7 u=root n=ansible INFO| PLAY [Deploy Opengram] *****
2026-12-07 10:00:01,000 p=7 u=root n=ansible INFO| TASK [opengram : Refresh the apt cache] *****
2026-12-07 10:00:01,010 p=7 u=root n=ansible INFO| Sunday 07 December 2026  10:00:01 +0000 (0:00:01.000)  0:00:01.000 ***
2026-12-07 10:00:03,500 p=7 u=root n=ansible INFO| ok: [ogdbench-fleet-2]
2026-12-07 10:00:05,000 p=7 u=root n=ansible INFO| ok: [ogdbench-fleet-1]
2026-12-07 10:00:05,000 p=7 u=root n=ansible INFO| TASK [common : Install nodejs, npm] *****
2026-12-07 10:00:15,000 p=7 u=root n=ansible INFO| changed: [ogdbench-fleet-1]
2026-12-07 10:00:25,250 p=7 u=root n=ansible INFO| changed: [ogdbench-fleet-2] => (item=x)
  a continuation line without a stamp: [ogdbench-fleet-1]
2026-12-07 10:00:25,500 p=7 u=root n=ansible INFO| TASK [opengram : Copy the package tarball] *****
2026-12-07 10:00:26,000 p=7 u=root n=ansible INFO| changed: [ogdbench-fleet-1]
2026-12-07 10:00:26,000 p=7 u=root n=ansible INFO| changed: [ogdbench-fleet-2]
2026-12-07 10:00:30,000 p=7 u=root n=ansible INFO| TASK [opengram : Install Opengram 0.2.1 as release 0.2.1+abc] ***
2026-12-07 10:00:40,000 p=7 u=root n=ansible INFO| changed: [ogdbench-fleet-2]
2026-12-07 10:00:50,000 p=7 u=root n=ansible INFO| changed: [ogdbench-fleet-1 -> localhost]
2026-12-07 10:00:51,000 p=7 u=root n=ansible INFO| PLAY RECAP *****
"""


def test_cold_fleet_host_steps_from_the_timed_log():
    import cold_fleet
    got = cold_fleet.host_steps(FLEET_LOG)
    assert got == {"ogdbench-fleet-1": {"apt": pytest.approx(14.0), "npm install": pytest.approx(20.0)},
                   "ogdbench-fleet-2": {"apt": pytest.approx(22.75), "npm install": pytest.approx(10.0)}}
    # the task name before the locks (HEAD~1 of f14edf2) is the same step
    old = FLEET_LOG.replace("Install Opengram 0.2.1 as release 0.2.1+abc", "Install the npm package at version 0.2.1")
    assert cold_fleet.host_steps(old)["ogdbench-fleet-1"]["npm install"] == pytest.approx(20.0)
    recap = {"ogdbench-fleet-1": {"changed": 30}, "ogdbench-fleet-2": {"changed": 31}, "localhost": {"changed": 1}}
    hosts = cold_fleet.per_host(recap, FLEET_LOG, ["ogdbench-fleet-1", "ogdbench-fleet-2", "ogdbench-fleet-3"])
    assert sorted(hosts) == ["ogdbench-fleet-1", "ogdbench-fleet-2"]
    assert hosts["ogdbench-fleet-2"]["changed"] == 31
    assert cold_fleet.per_host(recap, "", ["ogdbench-fleet-1"]) == {
        "ogdbench-fleet-1": {"apt": 0.0, "npm install": 0.0, "changed": 30}}


def test_cold_fleet_alternates_and_summarizes():
    import cold_fleet
    assert cold_fleet.ab_order(3) == [(1, "old"), (1, "new"), (2, "new"), (2, "old"), (3, "old"), (3, "new")]

    def fleet_run(which, seconds, npm, host_cpu=6.0):
        return {"name": f"cold-fleet-2-{which}", "ref": which, "commit": which[0] * 10, "seconds": seconds,
                "controller_cpu": 4.0, "host_cpu": host_cpu, "steps": {"apt": 30.0, "npm install": max(npm)},
                "per_host": {f"h{i}": {"apt": 20.0 + i, "npm install": s, "changed": 30 + i}
                             for i, s in enumerate(npm)}}
    runs = [fleet_run("old", 100.0, [10.0, 30.0]), fleet_run("new", 80.0, [5.0, 7.0]),
            fleet_run("new", 90.0, [6.0, 8.0], host_cpu=None), fleet_run("old", 110.0, [12.0, 14.0])]
    s = cold_fleet.summarize(runs)
    assert s["old"]["seconds"] == 105.0 and s["old"]["runs"] == 2
    assert s["old"]["per_host"]["npm install"] == {"median": 13.0, "max": 30.0}
    assert s["old"]["cpu"] == 10.0 and s["new"]["cpu"] is None  # one run's containers unreadable
    assert s["new"]["changed_per_host"] == {"median": 30.5, "max": 31}
    text = cold_fleet.table({"runs": runs, "summary": s})
    assert "| **old**, median of 2 | oooooooooo | 105.0 | 13.0 / 30.0 | 20.5 / 21.0 | 30.5 / 31 | 4.0 | 6.0 |" in text
    assert text.count("\n") == 1 + len(runs) + 2
