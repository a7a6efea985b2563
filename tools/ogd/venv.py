"""The dev venv ``$OGD_CACHE/venv-<key>`` with requirements-dev.txt installed (it includes
requirements.txt, what a run needs: the key covers both files)."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tools.ogd.common import (REPO_ROOT, STAMP_NAME, HostPrepError, apt_install, cache_dir, cache_lock,
                              log_path, run_logged, sha256_hex, stamp_matches, step, which, write_stamp)

REQUIREMENTS = REPO_ROOT / "requirements.txt"
REQUIREMENTS_DEV = REPO_ROOT / "requirements-dev.txt"
VENV_REVISION = 1


def python_tag() -> str:
    return f"{sys.implementation.name}-{platform.python_version()}"


def venv_key(requirements: bytes, python: str | None = None) -> str:
    return sha256_hex(f"venv-r{VENV_REVISION}", python or python_tag(), requirements)


def venv_path(requirements: bytes | None = None) -> Path:
    if requirements is None:
        requirements = requirements_bytes()
    return cache_dir() / f"venv-{venv_key(requirements)[:16]}"


def requirements_bytes() -> bytes:
    """Both pin files as the venv installs them (requirements-dev.txt includes requirements.txt)."""
    return _read_bytes(REQUIREMENTS) + b"\0" + _read_bytes(REQUIREMENTS_DEV)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise HostPrepError(f"cannot read {path}: {exc}") from exc


def _venv_usable(venv: Path) -> bool:
    python = venv / "bin" / "python"
    if not python.exists():
        return False
    try:
        return subprocess.run([str(python), "-c", ""], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _create_venv(venv: Path, log: Path) -> None:
    try:
        run_logged([sys.executable, "-m", "venv", str(venv)], log, "python3 -m venv")
    except HostPrepError:
        # Debian's python3 without python3-venv has no ensurepip: install it once.
        no_ensurepip = subprocess.run([sys.executable, "-c", "import ensurepip"],
                                      capture_output=True).returncode != 0
        if not (no_ensurepip and os.geteuid() == 0 and which("apt-get")):
            raise
        shutil.rmtree(venv, ignore_errors=True)
        v = sys.version_info
        apt_install([f"python{v.major}.{v.minor}-venv"])
        run_logged([sys.executable, "-m", "venv", str(venv)], log, "python3 -m venv",
                   append=True)


def ensure_venv() -> Path:
    """Ensure the dev venv exists and is complete; return its path."""
    with step("venv") as done, cache_lock("venv"):
        requirements = requirements_bytes()
        key = venv_key(requirements)
        venv = venv_path(requirements)
        stamp = venv / STAMP_NAME
        removed = _remove_other_venvs(venv)
        extra = f", removed {removed} old" if removed else ""
        if stamp_matches(stamp, key) and _venv_usable(venv):
            os.utime(stamp)  # in use: other checkouts' cleanups leave it alone
            done(f"{venv} up to date{extra}")
            return venv
        rebuilt = venv.exists()
        shutil.rmtree(venv, ignore_errors=True)
        if venv.exists():
            raise HostPrepError(f"cannot remove the incomplete venv {venv}")
        log = log_path("venv")
        _create_venv(venv, log)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
        run_logged([*pip, "install", "-r", str(REQUIREMENTS_DEV)], log,
                   "pip install -r requirements-dev.txt", timeout=1800, append=True)
        write_stamp(stamp, key, python=python_tag(), requirements=str(REQUIREMENTS_DEV))
        done(f"{'rebuilt' if rebuilt else 'created'} {venv}{extra}")
        return venv


# Venvs of other requirement sets stay this long after their last use: another
# checkout on this machine (a branch with other pins) may be running from one.
OTHER_VENV_GRACE_SECONDS = 2 * 24 * 3600


def _remove_other_venvs(keep: Path, now: float | None = None) -> int:
    """Remove the venvs of other requirement sets unused for OTHER_VENV_GRACE_SECONDS
    (judged by their stamp, touched each time ensure_venv finds a venv up to date)."""
    removed = 0
    base = keep.parent
    if not base.is_dir():
        return 0
    now = time.time() if now is None else now
    for other in base.glob("venv-*"):
        if other.is_dir() and other.name != keep.name and re.fullmatch(
                r"venv-[0-9a-f]{16}", other.name):
            marker = other / STAMP_NAME
            used = max((p.stat().st_mtime for p in (other, marker) if p.exists()), default=0)
            if now - used < OTHER_VENV_GRACE_SECONDS:
                continue
            shutil.rmtree(other, ignore_errors=True)
            removed += 1
    return removed
