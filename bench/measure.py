"""What the bench measures: the proxies (wrk, new connections, SSE, uploads,
interleaved round-robin) and the deployment cost (timed playbook runs)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import signal
import sys
import shlex
import shutil
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import topology
from topology import (APP_PORT, BENCH_IMAGE, BENCH_SECRET, CLIENT, CLIENT_DIR, PEBBLE, PEBBLE_ROOT, PROXY_HOSTS,
                      ROOT, UPLOAD_BYTES, BenchError, BenchPath, Host, create_containers, dexec, enable_ssh,
                      fleet_hosts, remove_containers, run, say, write_inventory)
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
    # Deployment cost. cold: converge one fresh host from the bare base image;
    # no_change_hosts: sizes of the no-change series on converged hosts
    # (() = only the no-change rerun of one proxy host), each size
    # no_change_rounds times, the order reversed every other round.
    cold: bool
    no_change_hosts: tuple[int, ...]
    no_change_rounds: int
    seed_chats: int = 20  # chats created on every app before the chat-list throughput


# What wrk reads, keep-alive: the health answer (costs the app almost nothing)
# and an authenticated read of a chat list (the secret in Authorization: Bearer,
# as the web app and API clients send it). limit=20 keeps the answer the same
# size while the SSE measurements add chats.
ENDPOINTS = {"health": "/api/v1/health", "chats": "/api/v1/chats?limit=20"}
# Where a path's results go in results["proxy"] (health keeps its old key).
THROUGHPUT_KEY = {"health": "throughput", "chats": "throughput_chats"}
# Endpoints read with the instance secret (Authorization: Bearer).
AUTHENTICATED = ("chats",)
# The processes whose CPU time is counted per request at 8 connections.
PROFILED = ("wrk", "nginx", "caddy", "node")
PROFILE_CONNS = 8


SMOKE = Settings("smoke", rounds=1, wrk_seconds=1, warmup_seconds=1, concurrencies=(1, 8, 32),
                 handshakes=10, sse_events=5, uploads=1, cold=False, no_change_hosts=(),
                 no_change_rounds=1)
FULL = Settings("full", rounds=5, wrk_seconds=6, warmup_seconds=3, concurrencies=(1, 8, 32),
                handshakes=60, sse_events=20, uploads=2, cold=True, no_change_hosts=(1, 2, 4, 8),
                no_change_rounds=3)


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
    # CPU seconds of ansible-playbook and every process it waited for (its
    # workers, the docker exec / ssh clients): the controller's own work.
    cpu_user: float | None = None
    cpu_sys: float | None = None
    # CPU seconds spent inside the target containers during the run (their
    # cgroups: the modules, plus whatever else runs there), and by the docker
    # engine's processes (dockerd, containerd, the shims: docker exec's far
    # side). None where this machine does not expose them.
    host_cpu: float | None = None
    engine_cpu: float | None = None
    round: int = 0  # in a series of runs

    @property
    def changed(self) -> int:
        return sum(v["changed"] for v in self.recap.values())

    @property
    def controller_cpu(self) -> float | None:
        return None if self.cpu_user is None else self.cpu_user + self.cpu_sys


def cgroup_cpu_files(container_id: str) -> list[Path]:
    """Where the engine accounts a container's CPU time (cgroup v1 cpuacct, or v2)."""
    return [Path(f"/sys/fs/cgroup/{d}/docker/{container_id}/cpuacct.usage")
            for d in ("cpuacct", "cpu,cpuacct")] + [
        Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cpu.stat")]


def read_cgroup_cpu(path: Path) -> float:
    """Seconds of CPU in a cpuacct.usage (ns) or a v2 cpu.stat (usage_usec)."""
    text = path.read_text()
    if path.name == "cpu.stat":
        return int(re.search(r"^usage_usec (\d+)", text, re.MULTILINE).group(1)) / 1e6
    return int(text.strip()) / 1e9


def containers_cpu(files: list[Path] | None) -> float | None:
    if not files:
        return None
    try:
        return sum(read_cgroup_cpu(f) for f in files)
    except (OSError, ValueError, AttributeError):
        return None


def container_cpu_files(names: list[str]) -> list[Path] | None:
    files = []
    for name in names:
        cid = run(["docker", "inspect", "--format", "{{.Id}}", name], check=False).stdout.strip()
        found = next((f for f in cgroup_cpu_files(cid) if cid and f.exists()), None)
        if found is None:
            return None
        files.append(found)
    return files


ENGINE_PROCESSES = ("dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2", "docker-proxy")


def proc_cpu_ticks(stat: str) -> int:
    """utime + stime (clock ticks) from a /proc/PID/stat line (comm may hold spaces)."""
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def engine_cpu() -> dict[int, int]:
    """CPU ticks of the docker engine's processes on this machine, by PID."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if (d / "comm").read_text().strip() in ENGINE_PROCESSES:
                out[int(d.name)] = proc_cpu_ticks((d / "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue
    return out


def engine_cpu_delta(before: dict[int, int], after: dict[int, int]) -> float:
    """Seconds of engine CPU between two engine_cpu() readings (processes in both,
    plus those that started in between; an exited one's last ticks are lost)."""
    ticks = sum(t - before.get(pid, 0) for pid, t in after.items())
    return ticks / os.sysconf("SC_CLK_TCK")


def playbook(name: str, playbook_path: str, inventory: Path, env: dict, work: Path,
             limit: list[str] | None = None, timeout: float = 3600,
             extra: dict | None = None, cpu_of: list[str] | None = None,
             tree: Path = ROOT) -> PlaybookRun:
    """One timed ansible-playbook run; cpu_of: containers whose CPU time is read
    around it (the controller's own CPU time is always read); tree: the
    checkout it runs from (another commit's exported tree: its playbooks,
    roles and ansible.cfg)."""
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
            "ANSIBLE_FORCE_COLOR": "0", "MOLECULE_PROJECT_DIRECTORY": str(tree)}
    files = container_cpu_files(cpu_of) if cpu_of else None
    # Only this thread starts processes: the children's rusage between the two
    # readings is ansible-playbook's and its descendants' (those it waited for).
    host0, engine0 = containers_cpu(files), engine_cpu()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    with open(log, "w") as fh:
        try:
            proc = subprocess.run(cmd, cwd=tree, env=penv, stdin=subprocess.DEVNULL, stdout=fh,
                                  stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"{name}: ansible-playbook timed out; log {log}") from exc
    seconds = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    host1, engine1 = containers_cpu(files), engine_cpu()
    output = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise BenchError(f"{name}: ansible-playbook failed (exit {proc.returncode}); log {log}\n"
                         + "\n".join(output.splitlines()[-40:]))
    result = PlaybookRun(name, len(limit or []), seconds, parse_recap(output), parse_profile(output),
                         str(log), cpu_user=ru1.ru_utime - ru0.ru_utime, cpu_sys=ru1.ru_stime - ru0.ru_stime,
                         host_cpu=None if None in (host0, host1) else host1 - host0,
                         engine_cpu=engine_cpu_delta(engine0, engine1))
    say(f"ansible: {name}: {seconds:.1f} s, changed={result.changed}, controller CPU "
        f"{result.controller_cpu:.1f} s" + (f", in the hosts {result.host_cpu:.1f} s"
                                             if result.host_cpu is not None else ""))
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


@contextlib.contextmanager
def bench_session(prog: str, keep: bool = False, errors: tuple = ()):
    """The frame every bench entry point runs in (run.py, caddy_sources.py, cold.py,
    cold_fleet.py): SIGTERM taken as Ctrl-C, the bench lock, the load sampled, our
    leftover containers removed first and ours removed at the end (unless `keep`), and an
    error of `errors` (BenchError and HostPrepError always) or an interrupt reported in one
    line instead of raised. Yields a dict: "sampler", "other_containers_at_start", then
    after the block "rc" (0, 1 after an error, 130 after an interrupt), "cleanup_s" and
    "other_containers_at_end"."""
    from tools.ogd.common import HostPrepError, cache_lock

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)
    state: dict = {"rc": 0}
    with cache_lock("ogdbench"), LoadSampler() as sampler:
        state.update(sampler=sampler, other_containers_at_start=len(topology.other_containers()))
        topology.cleanup_all()  # leftovers of an interrupted bench (ours only)
        try:
            yield state
        except (topology.BenchError, HostPrepError, *errors) as exc:
            print(f"{prog}: ERROR: {exc}", file=sys.stderr, flush=True)
            state["rc"] = 1
        except KeyboardInterrupt as exc:
            print(f"{prog}: interrupted ({exc or 'Ctrl-C'}); cleaning up", file=sys.stderr, flush=True)
            state["rc"] = 130
        finally:
            if keep:
                topology.say("--keep: containers left running: " + ", ".join(topology.our_objects("container")))
            else:
                started = time.monotonic()
                topology.cleanup_all()
                state["cleanup_s"] = time.monotonic() - started
        state["other_containers_at_end"] = len(topology.other_containers())


def bench_env(prog: str, workdir: str = "bench") -> tuple[dict, Path] | None:
    """The environment for ansible and molecule (the machine prepared first:
    tools/hostprep.py) and the bench's work directory; None, after saying
    why, when the machine could not be prepared."""
    from tools.ogd.common import HostPrepError, cache_dir
    from tools.ogd.env import ensure_all
    try:
        env = {**os.environ, **ensure_all()}
    except HostPrepError as exc:
        print(f"{prog}: preparing the machine failed: {exc}", file=sys.stderr)
        return None
    work = cache_dir() / workdir
    work.mkdir(parents=True, exist_ok=True)
    return env, work


def add_release_args(ap, default: Path) -> None:
    """--package (the packed real release, default `default`) and --standin."""
    ap.add_argument("--package", type=Path, default=default,
                    help=f"the packed release to deploy (default {default})")
    ap.add_argument("--standin", action="store_true",
                    help="deploy the offline stand-in instead (harness check; not the real app)")


def choose_release(args) -> bool:
    """topology.PACKAGE from --package, unless --standin; False, after saying
    why, when the packed release is not there."""
    from run import packed_release
    if args.standin:
        topology.say("package: the offline stand-in (tests/fixtures/opengram-standin), not the real app")
        return True
    if not args.package.is_file():
        print(f"no release at {args.package} (--package PATH, or --standin)", file=sys.stderr)
        return False
    topology.PACKAGE = packed_release(args.package)
    topology.say(f"package: the real {topology.PACKAGE['name']} {topology.PACKAGE['version']}")
    return True


def noise(session: dict) -> dict:
    """What else ran on the machine during a bench_session: other containers, load samples."""
    return {"other_containers_at_start": session["other_containers_at_start"],
            "other_containers_at_end": session["other_containers_at_end"],
            "load_samples": session["sampler"].samples}


def client_json(*args: str, timeout: float = 600) -> dict:
    proc = dexec(CLIENT.name, "python3", f"{CLIENT_DIR}/client.py", *args, timeout=timeout)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ca_args(path: BenchPath) -> list[str]:
    return ["--ca", PEBBLE_ROOT] if path.url.startswith("https") else []


def parse_times(output: str) -> float | None:
    """Seconds of CPU (user + system) of the shell's children, from the last line
    of the POSIX `times` builtin ("0m1.230000s 0m0.450000s")."""
    lines = [ln for ln in output.splitlines() if re.fullmatch(r"\s*\d+m[\d.]+s\s+\d+m[\d.]+s\s*", ln)]
    if not lines:
        return None
    parts = re.findall(r"(\d+)m([\d.]+)s", lines[-1])
    return sum(int(m) * 60 + float(sec) for m, sec in parts)


def wrk(path: BenchPath, conns: int, seconds: float, endpoint: str = "health",
        token: str | None = None) -> dict:
    """One wrk run; also the CPU seconds wrk used (the shell's `times`)."""
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
           "-s", f"{CLIENT_DIR}/wrk_report.lua"]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    cmd.append(f"{path.url}{ENDPOINTS[endpoint]}")
    proc = dexec(CLIENT.name, "sh", "-c", shlex.join(cmd) + "; rc=$?; times; exit $rc",
                 timeout=seconds + 120)
    out = parse_wrk(proc.stdout)
    out["wrk_cpu_s"] = parse_times(proc.stdout)
    return out


# ---------------------------------------------------------------------------
# CPU time per request: /proc of this host (the containers' processes are
# ours to read: same kernel), around one wrk run
# ---------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_ticks(stat: str) -> int:
    """utime + stime (clock ticks, all threads) from a /proc/PID/stat line."""
    fields = stat.rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def machine_ticks(stat: str) -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs from /proc/stat's first line."""
    v = [int(x) for x in stat.splitlines()[0].split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    total = sum(v[:8])
    return total - idle, total


def container_procs(container: str) -> dict[int, str]:
    """Host PID -> command name of a container's profiled processes."""
    out = topology.run(["docker", "top", container, "-eo", "pid,comm"], check=False).stdout
    procs = {}
    for line in out.splitlines()[1:]:
        pid, _, comm = line.strip().partition(" ")
        comm = comm.strip()
        if pid.isdigit() and comm in PROFILED:
            procs[int(pid)] = comm
    return procs


def cpu_snapshot(containers: list[str]) -> dict:
    procs: dict[int, tuple[str, int]] = {}
    for c in containers:
        for pid, comm in container_procs(c).items():
            try:
                procs[pid] = (comm, proc_ticks(Path(f"/proc/{pid}/stat").read_text()))
            except (OSError, IndexError, ValueError):
                pass
    busy, total = machine_ticks(Path("/proc/stat").read_text())
    return {"procs": procs, "busy": busy, "total": total}


def cpu_per_request(before: dict, after: dict, wrk_result: dict) -> dict:
    """Microseconds of CPU per request: wrk, each profiled process kind, the rest
    of the machine (kernel network work not charged to a process, docker exec,
    anything else running) and the machine's total busy time."""
    n = wrk_result["requests"]
    if not n:
        return {}
    us = 1e6 / CLK_TCK
    out = {k: 0.0 for k in PROFILED}
    for pid, (comm, ticks) in after["procs"].items():
        if pid in before["procs"]:
            out[comm] += (ticks - before["procs"][pid][1]) * us / n
    out["wrk"] = (wrk_result.get("wrk_cpu_s") or 0.0) * 1e6 / n
    out["busy"] = (after["busy"] - before["busy"]) * us / n
    out["rest"] = out["busy"] - sum(out[k] for k in PROFILED)
    return out


def seed_chats(settings: Settings, paths: list[BenchPath]) -> dict:
    """settings.seed_chats chats on every app measured (direct to its port)."""
    seeded = {}
    for host in dict.fromkeys(p.host for p in paths if p.kind != "ceiling"):
        out = client_json("seed", "--url", f"http://{host}:{APP_PORT}", "--token", BENCH_SECRET,
                          "--count", str(settings.seed_chats), "--list", ENDPOINTS["chats"])
        if out["errors"] or out["list_status"] != 200 or out["listed"] < settings.seed_chats:
            raise BenchError(f"seeding chats on {host}: {out}")
        seeded[host] = out
    say(f"chat list: {settings.seed_chats} chats created on " + ", ".join(seeded))
    return seeded


def endpoints_of(path: BenchPath) -> list[str]:
    """The ceilings answer the health path only."""
    return ["health"] if path.kind == "ceiling" else list(ENDPOINTS)


def summarize_throughput(runs: list[dict]) -> dict:
    return {"rps": median([r["rps"] for r in runs]),
            "p50_ms": median([r["p50_ms"] for r in runs]),
            "p90_ms": median([r["p90_ms"] for r in runs]),
            "p99_ms": median([r["p99_ms"] for r in runs]),
            "errors": sum(r["errors"] for r in runs),
            "rounds": runs}


def summarize_cpu(samples: list[dict]) -> dict:
    keys = [*PROFILED, "rest", "busy"]
    return {**{f"{k}_us": median([s[k] for s in samples if k in s]) for k in keys},
            "n": len(samples)}


def measure_proxies(settings: Settings, paths: list[BenchPath]) -> dict:
    thr: dict[str, dict[str, dict[int, list[dict]]]] = {
        e: {p.name: {c: [] for c in settings.concurrencies} for p in paths if e in endpoints_of(p)}
        for e in ENDPOINTS}
    cpu: dict[str, dict[str, list[dict]]] = {e: {p.name: [] for p in paths if e in endpoints_of(p)}
                                            for e in ENDPOINTS}
    hand: dict[str, list[dict]] = {p.name: [] for p in paths}
    sse: dict[str, list[dict]] = {p.name: [] for p in paths}
    upl: dict[str, list[dict]] = {p.name: [] for p in paths}
    errors: dict[str, list[str]] = {p.name: [] for p in paths}

    seeded = seed_chats(settings, paths)
    say(f"warm-up: {settings.warmup_seconds:.0f} s of wrk -c8 per path and endpoint")
    for p in paths:
        for e in endpoints_of(p):
            r = wrk(p, 8, settings.warmup_seconds, e, BENCH_SECRET if e in AUTHENTICATED else None)
            if r["errors"] or not r["requests"]:
                raise BenchError(f"warm-up through {p.name} ({p.url}{ENDPOINTS[e]}): {r['requests']} "
                                 f"requests, errors {r['error_detail']}")
    for rnd in range(settings.rounds):
        order = paths[rnd % len(paths):] + paths[:rnd % len(paths)]
        say(f"round {rnd + 1}/{settings.rounds}: order {', '.join(p.name for p in order)}")
        for e in ENDPOINTS:
            for conns in settings.concurrencies:
                for p in (p for p in order if e in endpoints_of(p)):
                    profiled = [CLIENT.name, p.host]
                    before = cpu_snapshot(profiled) if conns == PROFILE_CONNS else None
                    r = wrk(p, conns, settings.wrk_seconds, e, BENCH_SECRET if e in AUTHENTICATED else None)
                    if before is not None:
                        cpu[e][p.name].append(cpu_per_request(before, cpu_snapshot(profiled), r))
                    r["round"] = rnd
                    thr[e][p.name][conns].append(r)
                    if r["errors"]:
                        errors[p.name].append(f"wrk {e} -c{conns}: {r['error_detail']}")
                say(f"  wrk {e} -c{conns}: " + ", ".join(
                    f"{name} {runs[conns][-1]['rps']:.0f}/s" for name, runs in thr[e].items()))
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

    result: dict = {"endpoints": {THROUGHPUT_KEY[e]: path for e, path in ENDPOINTS.items()},
                    "seeded": seeded, "cpu_per_request": {}, "handshake": {}, "sse": {},
                    "upload": {}, "errors": errors}
    direct = paths[0].name
    for e in ENDPOINTS:
        result[THROUGHPUT_KEY[e]] = {name: {str(c): summarize_throughput(runs) for c, runs in by_conns.items()}
                                     for name, by_conns in thr[e].items()}
        result["cpu_per_request"][e] = {name: summarize_cpu(samples) for name, samples in cpu[e].items()}
    for p in paths:
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
    add_ratios(result, direct)
    return result


def add_ratios(result: dict, direct: str) -> None:
    """ratio_to_direct and ratio_to_guide of every throughput figure; SSE minus direct."""
    twins = {"ours-caddy": "guide-caddy", "ours-nginx": "guide-nginx"}
    for key in THROUGHPUT_KEY.values():
        table = result.get(key, {})
        for name, by_conns in table.items():
            for conns, t in by_conns.items():
                base = table.get(direct, {}).get(conns, {}).get("rps")
                t["ratio_to_direct"] = t["rps"] / base if base and t["rps"] is not None else None
                twin = table.get(twins.get(name, ""), {}).get(conns, {}).get("rps")
                t["ratio_to_guide"] = t["rps"] / twin if twin and t["rps"] is not None else None
    for name, s in result.get("sse", {}).items():
        for key in ("delay", "created"):
            d = result["sse"][direct][f"{key}_median_ms"]
            v = s[f"{key}_median_ms"]
            s[f"{key}_median_minus_direct_ms"] = v - d if None not in (d, v) else None


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
    series: list[PlaybookRun] = []
    setup: list[PlaybookRun] = []
    target = PROXY_HOSTS[0]
    # The same host (already converged) with both connections Ansible can use here.
    inv = write_inventory(work, hosts)
    runs.append(playbook("no-change-1", "site.yml", inv, env, work, limit=[target.name],
                         cpu_of=[target.name]))
    if not settings.no_change_hosts:
        # smoke: that rerun is the no-change series' only point
        return summarize_deploy(runs, {}, runs[:], setup)
    inv_ssh = write_inventory(work, hosts, {target.name: enable_ssh(target, work)},
                              name="inventory-ssh.yml")
    runs.append(playbook("no-change-1-ssh", "site.yml", inv_ssh, env, work, limit=[target.name],
                         cpu_of=[target.name]))
    count = 30
    overhead = {"docker": connection_overhead("overhead-docker", inv, target, count, env, work),
                "ssh": connection_overhead("overhead-ssh", inv_ssh, target, count, env, work)}
    if not keep:
        # The proxy hosts are not needed any more: only Pebble (the ACME CA) stays.
        remove_containers([h.name for h in hosts if h != PEBBLE])
        hosts = [PEBBLE]
    if settings.cold:
        runs.append(cold_converge("cold-1", hosts, env, work))
    # The controller's time per extra host: no-change runs on 1..N converged
    # hosts. They start from the cached package image (the cold path is
    # cold-1's); only the no-change runs are measured.
    sizes = settings.no_change_hosts
    fleet = fleet_hosts(max(sizes), image=BENCH_IMAGE, short="scale")
    say(f"no-change series: {len(fleet)} hosts from {BENCH_IMAGE}, sizes {sizes}, "
        f"{settings.no_change_rounds} rounds")
    remove_containers([h.name for h in fleet])
    create_containers(fleet)
    try:
        inv = write_inventory(work, hosts + fleet)
        setup.append(playbook(f"converge-scale-{len(fleet)}", "site.yml", inv, env, work,
                              limit=[h.name for h in fleet]))
        for rnd, order in enumerate(series_order(sizes, settings.no_change_rounds)):
            for n in order:
                names = [h.name for h in fleet[:n]]
                r = playbook(f"no-change-scale-{n}-round-{rnd + 1}", "site.yml", inv, env, work,
                             limit=names, cpu_of=names)
                r.round = rnd + 1
                series.append(r)
    finally:
        if not keep:
            remove_containers([h.name for h in fleet])
    return summarize_deploy(runs, overhead, series, setup)


def cold_converge(name: str, hosts: list[Host], env: dict, work: Path, n: int = 1,
                  tree: Path = ROOT, build_cache: Path | None = None) -> PlaybookRun:
    """site.yml on n fresh hosts at once from the bare base image (the install
    path users hit), beside the running hosts (Pebble), from tree's checkout;
    the hosts are removed after. Each run starts with an empty build cache of
    its own (opengram_build_cache_dir; a commit before it ignores the
    variable): cold means that the release is built in the run; build_cache:
    an earlier run's cache instead (a host that joins a fleet later)."""
    fleet = fleet_hosts(n)
    names = [h.name for h in fleet]
    if build_cache is None:
        shutil.rmtree(work / "builds" / name, ignore_errors=True)  # an earlier bench's run of this name
    say(f"cold converge: {n} fresh container(s) from {BASE_IMAGE}")
    remove_containers(names)
    create_containers(fleet)
    try:
        return playbook(name, "site.yml", write_inventory(work, hosts + fleet), env, work, limit=names,
                        cpu_of=names, tree=tree,
                        extra={"opengram_build_cache_dir": str(build_cache or work / "builds" / name)})
    finally:
        remove_containers(names)


def series_order(sizes: tuple[int, ...], rounds: int) -> list[list[int]]:
    """The sizes of each round: ascending, then descending, alternating (a drift
    in the machine's load then hits small and large runs alike)."""
    up = sorted(sizes)
    return [up if r % 2 == 0 else up[::-1] for r in range(rounds)]


def scaling(points: dict[int, float]) -> dict:
    """How a value grows with the number of hosts, from {hosts: value}:
    per_extra_host: (v(max) - v(min)) / (max - min hosts), the slope from the
    smallest to the largest run; steps: the same between neighbouring sizes;
    fit: least-squares line (slope per host, intercept = the fixed part)."""
    ns = sorted(points)
    if len(ns) < 2:
        return {"per_extra_host": None, "steps": [], "fit_slope": None, "fit_intercept": None}
    steps = [{"from": a, "to": b, "per_extra_host": (points[b] - points[a]) / (b - a)}
             for a, b in zip(ns, ns[1:])]
    mean_n = sum(ns) / len(ns)
    mean_v = sum(points[n] for n in ns) / len(ns)
    slope = (sum((n - mean_n) * (points[n] - mean_v) for n in ns)
             / sum((n - mean_n) ** 2 for n in ns))
    return {"per_extra_host": (points[ns[-1]] - points[ns[0]]) / (ns[-1] - ns[0]), "steps": steps,
            "fit_slope": slope, "fit_intercept": mean_v - slope * mean_n}


SERIES_METRICS = ("seconds", "controller_cpu", "cpu_user", "cpu_sys", "host_cpu", "engine_cpu")


def series_summary(points: list[dict]) -> dict:
    """The no-change series: per size the median of each metric over the rounds,
    and how each metric grows per extra host (scaling)."""
    by_hosts: dict[int, dict] = {}
    for n in sorted({p["hosts"] for p in points}):
        mine = [p for p in points if p["hosts"] == n]
        by_hosts[n] = {"runs": len(mine), "changed": sum(p["changed"] for p in mine)}
        for key in SERIES_METRICS:
            vals = [p[key] for p in mine if p.get(key) is not None]
            by_hosts[n][key] = median(vals) if len(vals) == len(mine) else None
    slopes = {}
    for key in SERIES_METRICS:
        pts = {n: v[key] for n, v in by_hosts.items() if v[key] is not None}
        slopes[key] = scaling(pts) if len(pts) == len(by_hosts) else scaling({})
    return {"by_hosts": {str(n): v for n, v in by_hosts.items()}, "scaling": slopes}


def run_record(r: PlaybookRun, profile: bool = True) -> dict:
    out = {"hosts": r.hosts, "seconds": r.seconds, "changed": r.changed, "recap": r.recap,
           "controller_cpu": r.controller_cpu, "cpu_user": r.cpu_user, "cpu_sys": r.cpu_sys,
           "host_cpu": r.host_cpu, "engine_cpu": r.engine_cpu, "log": r.log}
    if profile:
        out.update(profile_top10=r.profile[:10], profile_all=r.profile)
    return out


def summarize_deploy(runs: list[PlaybookRun], overhead: dict, series: list[PlaybookRun],
                     setup: list[PlaybookRun]) -> dict:
    points = [{"name": r.name, "round": r.round, **run_record(r, profile=False),
               "profile_top10": r.profile[:10]} for r in series]
    return {"runs": {r.name: run_record(r) for r in runs},
            "connection_overhead": overhead,
            "setup_runs": {r.name: {"hosts": r.hosts, "seconds": r.seconds, "changed": r.changed,
                                    "log": r.log} for r in setup},
            "no_change_series": {"image": BENCH_IMAGE if setup else "the converged proxy host",
                                 "points": points, **series_summary(points)}}
