"""What every tool here shares: the error type, the cache under ``$OGD_CACHE``,
stamps, locks, one-line progress, and running commands (logged or captured)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]
STAMP_NAME = ".ogd-stamp.json"
SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


class HostPrepError(RuntimeError):
    """A step failed; the message says what and what to look at."""


def cache_dir() -> Path:
    """``$OGD_CACHE`` or ``~/.cache/opengram-deploy`` (not created)."""
    value = os.environ.get("OGD_CACHE")
    if value:
        return Path(value).expanduser().resolve()
    return Path("~/.cache/opengram-deploy").expanduser()


def sha256_hex(*parts: bytes | str) -> str:
    """sha256 over length-prefixed parts, so ("ab","c") != ("a","bc")."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(str(len(data)).encode() + b":")
        h.update(data)
    return h.hexdigest()


def canonical_json(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def read_stamp(path: Path) -> dict | None:
    """The stamp's content, or None when missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def stamp_matches(path: Path, key: str) -> bool:
    stamp = read_stamp(path)
    return stamp is not None and stamp.get("key") == key


def write_stamp(path: Path, key: str, **extra: object) -> None:
    """Write atomically (temp file + rename): a stamp is either whole or absent."""
    data = {"key": key, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def which(name: str) -> str | None:
    """shutil.which, also looking in the sbin dirs (not on every PATH)."""
    path = os.environ.get("PATH", os.defpath)
    extra = [d for d in SBIN_DIRS if d not in path.split(os.pathsep)]
    return shutil.which(name, path=os.pathsep.join([path, *extra]))


def say(msg: str) -> None:
    """A progress line on stderr (stdout is for what callers capture)."""
    print(msg, file=sys.stderr, flush=True)


@contextlib.contextmanager
def step(name: str) -> Iterator[Callable[[str], None]]:
    """Time a step and print one line: ``name: what it did (1.2 s)``.

    The body calls the yielded ``done(message)``; on error nothing is printed
    here (the caller reports the error)."""
    started = time.monotonic()
    result: list[str] = []
    yield result.append
    elapsed = time.monotonic() - started
    say(f"{name}: {result[-1] if result else 'done'} ({elapsed:.1f} s)")


@contextlib.contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """Serialize one step between concurrent hostprep runs on this machine."""
    locks = cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{name}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"{name}: waiting for another hostprep run ({locks / name}.lock)")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def log_path(name: str) -> Path:
    logs = cache_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return logs / f"{name}.log"


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def run_logged(cmd: list[str], log: Path, what: str, *, env: dict | None = None,
               timeout: float | None = None, append: bool = False) -> None:
    """Run ``cmd`` with its output in ``log``; raise with the log's tail on failure."""
    with open(log, "a" if append else "w") as fh:
        fh.write(f"$ {shlex.join(cmd)}\n")
        fh.flush()
        try:
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env, timeout=timeout)
        except FileNotFoundError as exc:
            raise HostPrepError(f"{what}: {cmd[0]} not found ({exc})") from exc
        except subprocess.TimeoutExpired as exc:
            raise HostPrepError(f"{what}: timed out after {timeout:.0f} s; log: {log}") from exc
    if proc.returncode != 0:
        raise HostPrepError(
            f"{what} failed (exit {proc.returncode}); log: {log}\n{tail(log)}")


def run_captured(cmd: list[str], *, error: type[Exception] = HostPrepError, check: bool = True,
                 timeout: float = 120, input: str | None = None, **kw) -> subprocess.CompletedProcess:
    """Run ``cmd`` with its output captured. A missing program, a timeout or
    (with ``check``) a non-zero exit raise ``error`` naming the command and the
    tail of what it printed. Shared by tools/sandbox.py and bench/run.py."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL, **kw)
    except FileNotFoundError as exc:
        raise error(f"{cmd[0]} not found: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise error(f"`{shlex.join(cmd)}` timed out after {timeout:.0f} s") from exc
    if check and proc.returncode != 0:
        raise error(f"`{shlex.join(cmd)}` failed (exit {proc.returncode}):\n"
                    f"{(proc.stderr or proc.stdout).strip()[-3000:]}")
    return proc


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise HostPrepError(f"{what} needs root (run hostprep as root)")


_apt_updated = False


def apt_install(packages: list[str]) -> None:
    """``apt-get update`` (once per process) and ``apt-get install -y``."""
    global _apt_updated
    require_root(f"installing {' '.join(packages)}")
    if not which("apt-get"):
        raise HostPrepError(f"cannot install {' '.join(packages)}: no apt-get on this machine")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log = log_path("apt")
    if not _apt_updated:
        run_logged(["apt-get", "update"], log, "apt-get update", env=env, timeout=600)
        _apt_updated = True
    run_logged(["apt-get", "install", "-y", *packages], log,
               f"apt-get install {' '.join(packages)}", env=env, timeout=1200, append=True)


def strip_comment(line: str) -> str:
    """``line`` without its YAML comment."""
    # a '#' starts a comment at line start or after whitespace, outside quotes
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line
