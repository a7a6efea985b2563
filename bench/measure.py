"""What the bench measures: the proxies (wrk, new connections, SSE, uploads,
interleaved round-robin) and the deployment cost (timed playbook runs)."""

from __future__ import annotations

import json
import shlex
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import topology
from topology import (APP_PORT, BENCH_SECRET, CLIENT, CLIENT_DIR, PEBBLE, PEBBLE_ROOT, PROXY_HOSTS, ROOT,
                      UPLOAD_BYTES, BenchError, BenchPath, Host, create_containers, dexec, enable_ssh,
                      fleet_hosts, remove_containers, say, write_inventory)
from tools.ogd.images import BASE_IMAGE
from tools.ogd.recap import parse_profile, parse_recap

@dataclass(frozen=True)
class Settings:
    mode: str
    rounds: int
    wrk_seconds: float
    warmup_seconds: float
    concurrencies: tuple[int, ...]
    handshakes: int
    sse_events: int
    uploads: int
    fleets: tuple[int, ...]  # cold fleet sizes; () = only the no-change rerun of one host


SMOKE = Settings("smoke", rounds=1, wrk_seconds=1, warmup_seconds=1, concurrencies=(1, 8, 32),
                 handshakes=10, sse_events=5, uploads=1, fleets=())
FULL = Settings("full", rounds=5, wrk_seconds=6, warmup_seconds=3, concurrencies=(1, 8, 32),
                handshakes=60, sse_events=20, uploads=2, fleets=(1, 2, 4))


def percentile(values: list[float], pct: float) -> float | None:
    """Linear-interpolated percentile (numpy's default); None for no values."""
    if not values:
        return None
    xs = sorted(values)
    k = (len(xs) - 1) * pct / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


_WRK_MARK = "OGDBENCH_JSON "


def parse_wrk(output: str) -> dict:
    """The JSON line of bench/wrk_report.lua, plus derived requests/s and ms latencies."""
    for line in output.splitlines():
        if line.startswith(_WRK_MARK):
            data = json.loads(line[len(_WRK_MARK):])
            break
    else:
        raise BenchError(f"no {_WRK_MARK.strip()} line in wrk's output:\n{output[-2000:]}")
    seconds = data["duration_us"] / 1e6
    lat = data["latency_us"]
    errors = sum(data["errors"].values())
    return {"requests": data["requests"], "seconds": seconds,
            "rps": data["requests"] / seconds if seconds else 0.0,
            "p50_ms": lat["p50"] / 1e3, "p90_ms": lat["p90"] / 1e3, "p99_ms": lat["p99"] / 1e3,
            "mean_ms": lat["mean"] / 1e3, "max_ms": lat["max"] / 1e3,
            "errors": errors, "error_detail": data["errors"]}


@dataclass
class PlaybookRun:
    name: str
    hosts: int
    seconds: float
    recap: dict
    profile: list = field(default_factory=list)
    log: str = ""

    @property
    def changed(self) -> int:
        return sum(v["changed"] for v in self.recap.values())


def playbook(name: str, playbook_path: str, inventory: Path, env: dict, work: Path,
             limit: list[str] | None = None, timeout: float = 3600,
             extra: dict | None = None) -> PlaybookRun:
    log = work / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["ansible-playbook", playbook_path, "-i", str(inventory)]
    if limit:
        cmd += ["--limit", ",".join(limit)]
    if extra:
        cmd += ["--extra-vars", json.dumps(extra)]
    say(f"ansible: {name}: {shlex.join(cmd)}  (log {log})")
    penv = {**env, "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all", "PROFILE_TASKS_SORT_ORDER": "descending",
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks", "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0", "MOLECULE_PROJECT_DIRECTORY": str(ROOT)}
    t0 = time.monotonic()
    with open(log, "w") as fh:
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=penv, stdin=subprocess.DEVNULL, stdout=fh,
                                  stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"{name}: ansible-playbook timed out; log {log}") from exc
    seconds = time.monotonic() - t0
    output = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise BenchError(f"{name}: ansible-playbook failed (exit {proc.returncode}); log {log}\n"
                         + "\n".join(output.splitlines()[-40:]))
    result = PlaybookRun(name, len(limit or []), seconds, parse_recap(output), parse_profile(output),
                         str(log))
    say(f"ansible: {name}: {seconds:.1f} s, changed={result.changed}")
    return result


class LoadSampler:
    """/proc/loadavg and the number of other containers, every few seconds."""

    def __init__(self, every: float = 5.0):
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._every = every
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                load1 = float(Path("/proc/loadavg").read_text().split()[0])
            except (OSError, ValueError):
                load1 = None
            self.samples.append({"t": round(time.monotonic() - topology.T0, 1), "load1": load1})
            self._stop.wait(self._every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)


def client_json(*args: str, timeout: float = 600) -> dict:
    proc = dexec(CLIENT.name, "python3", f"{CLIENT_DIR}/client.py", *args, timeout=timeout)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ca_args(path: BenchPath) -> list[str]:
    return ["--ca", PEBBLE_ROOT] if path.url.startswith("https") else []


def wrk(path: BenchPath, conns: int, seconds: float) -> dict:
    proc = dexec(CLIENT.name, "wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s",
                 "--timeout", "5s", "-s", f"{CLIENT_DIR}/wrk_report.lua",
                 f"{path.url}/api/v1/health", timeout=seconds + 120)
    return parse_wrk(proc.stdout)


def measure_proxies(settings: Settings, paths: list[BenchPath]) -> dict:
    thr: dict[str, dict[int, list[dict]]] = {p.name: {c: [] for c in settings.concurrencies}
                                             for p in paths}
    hand: dict[str, list[dict]] = {p.name: [] for p in paths}
    sse: dict[str, list[dict]] = {p.name: [] for p in paths}
    upl: dict[str, list[dict]] = {p.name: [] for p in paths}
    errors: dict[str, list[str]] = {p.name: [] for p in paths}

    say(f"warm-up: {settings.warmup_seconds:.0f} s of wrk -c8 per path")
    for p in paths:
        r = wrk(p, 8, settings.warmup_seconds)
        if r["errors"] or not r["requests"]:
            raise BenchError(f"warm-up through {p.name} ({p.url}): {r['requests']} requests, "
                             f"errors {r['error_detail']}")
    for rnd in range(settings.rounds):
        order = paths[rnd % len(paths):] + paths[:rnd % len(paths)]
        say(f"round {rnd + 1}/{settings.rounds}: order {', '.join(p.name for p in order)}")
        for conns in settings.concurrencies:
            for p in order:
                r = wrk(p, conns, settings.wrk_seconds)
                r["round"] = rnd
                thr[p.name][conns].append(r)
                if r["errors"]:
                    errors[p.name].append(f"wrk -c{conns}: {r['error_detail']}")
            say(f"  wrk -c{conns}: " + ", ".join(
                f"{p.name} {thr[p.name][conns][-1]['rps']:.0f}/s" for p in paths))
        for p in order:
            out = client_json("handshake", "--url", p.url, *ca_args(p),
                              "--count", str(settings.handshakes))
            hand[p.name] += out["samples"]
            errors[p.name] += [f"handshake: {e}" for e in out["errors"][:3]]
        for p in (p for p in order if p.kind != "ceiling"):
            host_url = f"http://{p.host}:{APP_PORT}"
            out = client_json("sse", "--url", p.url, "--post-url", host_url, *ca_args(p),
                              "--token", BENCH_SECRET,
                              "--count", str(settings.sse_events))
            sse[p.name] += out["samples"]
            errors[p.name] += [f"sse: {e}" for e in out.get("errors", [])[:3]]
            if out.get("error"):
                errors[p.name].append(f"sse: {out['error']}")
        for p in (p for p in order if p.kind != "ceiling"):
            out = client_json("upload", "--url", p.url, *ca_args(p), "--token", BENCH_SECRET, "--file",
                              f"{CLIENT_DIR}/upload.bin", "--count", str(settings.uploads))
            upl[p.name] += out["samples"]
            errors[p.name] += [f"upload: {e}" for e in out["errors"][:3]]
        say("  handshake/SSE/upload done")

    result: dict = {"throughput": {}, "handshake": {}, "sse": {}, "upload": {}, "errors": errors}
    direct = paths[0].name
    for p in paths:
        result["throughput"][p.name] = {}
        for conns, runs in thr[p.name].items():
            result["throughput"][p.name][str(conns)] = {
                "rps": median([r["rps"] for r in runs]),
                "p50_ms": median([r["p50_ms"] for r in runs]),
                "p90_ms": median([r["p90_ms"] for r in runs]),
                "p99_ms": median([r["p99_ms"] for r in runs]),
                "errors": sum(r["errors"] for r in runs),
                "rounds": runs}
        hs = hand[p.name]
        result["handshake"][p.name] = {
            "n": len(hs),
            "connect_ms_median": median([s["connect_ms"] for s in hs]),
            "handshake_ms_median": median([s["handshake_ms"] for s in hs
                                           if s["handshake_ms"] is not None]),
            "handshake_ms_p95": percentile([s["handshake_ms"] for s in hs
                                            if s["handshake_ms"] is not None], 95),
            "new_connection_request_ms_median": median([s["first_response_ms"] for s in hs])}
        ss = sse[p.name]
        created = [s["created_to_arrival_ms"] for s in ss]
        delay = [s["after_post_answer_ms"] for s in ss]
        result["sse"][p.name] = {
            "n": len(ss), "expected": 0 if p.kind == "ceiling" else settings.sse_events * settings.rounds,
            # The app writes the POST's answer (direct, never proxied) and then the
            # event in the same tick: event arrival minus answer arrival is the
            # delay the path adds (both stamped by one select() in the client).
            "delay_median_ms": median(delay), "delay_p95_ms": percentile(delay, 95),
            # From the chat's created_at (the app's clock, 1 ms resolution); includes
            # the app's database write before the event is sent.
            "created_median_ms": median(created), "created_p95_ms": percentile(created, 95)}
        us = upl[p.name]
        result["upload"][p.name] = {
            "n": len(us), "bytes": UPLOAD_BYTES,
            "mb_per_s_median": median([u["mb_per_s"] for u in us]),
            "seconds_median": median([u["seconds"] for u in us]),
            "stored_ok": all(u["stored_bytes"] == UPLOAD_BYTES for u in us)}
    for p in paths:
        for conns, t in result["throughput"][p.name].items():
            base = result["throughput"][direct][conns]["rps"]
            t["ratio_to_direct"] = t["rps"] / base if base else None
        twin = {"ours-caddy": "guide-caddy", "ours-nginx": "guide-nginx"}.get(p.name)
        for conns, t in result["throughput"][p.name].items():
            base = result["throughput"].get(twin, {}).get(conns, {}).get("rps")
            t["ratio_to_guide"] = t["rps"] / base if base and twin else None
        for key in ("delay", "created"):
            d = result["sse"][direct][f"{key}_median_ms"]
            v = result["sse"][p.name][f"{key}_median_ms"]
            result["sse"][p.name][f"{key}_median_minus_direct_ms"] = (
                v - d if None not in (d, v) else None)
    return result


def connection_overhead(name: str, inv: Path, host: Host, count: int, env: dict,
                        work: Path) -> dict:
    r = playbook(name, "bench/overhead.yml", inv, env, work, limit=[host.name],
                 extra={"ogdbench_overhead_count": count})
    loop = next((t["seconds"] for t in r.profile if t["task"].startswith("Run a no-op module")), None)
    return {"module_runs": count, "seconds": loop,
            "per_module_s": loop / count if loop is not None else None}


def deploy_cost(settings: Settings, env: dict, work: Path, hosts: list[Host],
                keep: bool) -> dict:
    runs: list[PlaybookRun] = []
    target = PROXY_HOSTS[0]
    # The same host (already converged) with both connections Ansible can use here.
    inv = write_inventory(work, hosts)
    runs.append(playbook("no-change-1", "site.yml", inv, env, work, limit=[target.name]))
    if settings.mode == "smoke":
        return summarize_deploy(runs, {})
    inv_ssh = write_inventory(work, hosts, {target.name: enable_ssh(target, work)},
                              name="inventory-ssh.yml")
    runs.append(playbook("no-change-1-ssh", "site.yml", inv_ssh, env, work, limit=[target.name]))
    count = 30
    overhead = {"docker": connection_overhead("overhead-docker", inv, target, count, env, work),
                "ssh": connection_overhead("overhead-ssh", inv_ssh, target, count, env, work)}
    if settings.fleets and not keep:
        # The proxy hosts are not needed any more: only Pebble (the ACME CA) stays.
        remove_containers([h.name for h in hosts if h != PEBBLE])
        hosts = [PEBBLE]
    for n in settings.fleets:
        fleet = fleet_hosts(n)
        say(f"fleet of {n}: fresh containers from {BASE_IMAGE}")
        remove_containers([h.name for h in fleet])
        create_containers(fleet)
        inv = write_inventory(work, hosts + fleet)
        try:
            runs.append(playbook(f"cold-{n}", "site.yml", inv, env, work,
                                 limit=[h.name for h in fleet]))
            if n in (1, max(settings.fleets)):
                runs.append(playbook(f"no-change-fleet-{n}", "site.yml", inv, env, work,
                                     limit=[h.name for h in fleet]))
        finally:
            remove_containers([h.name for h in fleet])
    return summarize_deploy(runs, overhead)


def summarize_deploy(runs: list[PlaybookRun], overhead: dict) -> dict:
    out = {"runs": {r.name: {"hosts": r.hosts, "seconds": r.seconds, "changed": r.changed,
                             "recap": r.recap, "profile_top10": r.profile[:10],
                             "profile_all": r.profile, "log": r.log} for r in runs},
           "connection_overhead": overhead}
    cold = {int(k.split("-")[1]): v["seconds"] for k, v in out["runs"].items() if k.startswith("cold-")}
    if 1 in cold:
        out["fleet_ratio_to_one"] = {str(n): s / cold[1] for n, s in sorted(cold.items())}
    return out
