"""The environment the tools run ansible, molecule and pytest in, and
``ensure_all``: every preparation step at once."""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

from tools.ogd.common import REPO_ROOT, apt_install, cache_dir, cache_lock, say, step, which
from tools.ogd.docker import ensure_docker
from tools.ogd.galaxy import collections_path, ensure_collections
from tools.ogd.images import ensure_base_image, ensure_pkgs_image
from tools.ogd.venv import ensure_venv, venv_path


def environment(ensure: bool = False, base_path: str | None = None) -> dict[str, str]:
    """Env vars for subprocesses that run ansible / molecule / pytest from the venv.

    Paths are computed, not checked; pass ``ensure=True`` to run the venv and
    collections steps first (not docker/images). Merge into ``os.environ``:
    ``subprocess.run(cmd, env={**os.environ, **hostprep.environment()})``."""
    if ensure:
        venv = ensure_venv()
        colls = ensure_collections()
    else:
        venv, colls = venv_path(), collections_path()
    ansible_home = cache_dir() / "ansible-home"
    if ensure:
        ansible_home.mkdir(parents=True, exist_ok=True)
    path = base_path if base_path is not None else os.environ.get("PATH", os.defpath)
    return {
        "PATH": f"{venv / 'bin'}{os.pathsep}{path}" if path else str(venv / "bin"),
        "VIRTUAL_ENV": str(venv),
        "OGD_VENV": str(venv),
        # This checkout, the collection opengram_deploy.opengram (ansible.cfg's
        # first entry too), then the pinned collections of requirements*.yml.
        "ANSIBLE_COLLECTIONS_PATH": f"{REPO_ROOT / 'collections'}{os.pathsep}{colls}",
        # The pinned collections alone: a scenario that converges through the
        # built and installed collection (molecule/fleet) puts them after it.
        "OGD_DEV_COLLECTIONS": str(colls),
        "ANSIBLE_HOME": str(ansible_home),
        # The scenarios are under molecule/ (molecule would look in
        # extensions/molecule of a collection, and warns when it finds them here).
        "MOLECULE_GLOB": "molecule/*/molecule.yml",
    }


def env_block(env: dict[str, str] | None = None) -> str:
    """Shell-sourceable exports; PATH keeps the caller's own ``$PATH`` at the end."""
    env = dict(env or environment(base_path=""))
    bin_dir = str(Path(env["OGD_VENV"]) / "bin")
    lines = [f'export PATH={shlex.quote(bin_dir)}:"$PATH"']
    for name in ("OGD_VENV", "VIRTUAL_ENV", "ANSIBLE_COLLECTIONS_PATH", "OGD_DEV_COLLECTIONS", "ANSIBLE_HOME"):
        lines.append(f"export {name}={shlex.quote(env[name])}")
    return "\n".join(lines) + "\n"


# What the README's quick start asks of the operator's machine besides Python
# (the preflight scenario runs it from this one): command -> Debian package.
OPERATOR_TOOLS = {"git": "git", "ssh": "openssh-client", "ssh-keyscan": "openssh-client",
                  "ssh-keygen": "openssh-client", "curl": "curl"}


def ensure_operator_tools() -> None:
    """The quick start's tools on this machine, installed from Debian when missing."""
    with step("operator tools") as note:
        with cache_lock("operator-tools"):
            missing = sorted({package for command, package in OPERATOR_TOOLS.items() if not which(command)})
            if missing:
                apt_install(missing)
                note("installed " + " ".join(missing))
            else:
                note("already installed")


def ensure_all() -> dict[str, str]:
    started = time.monotonic()
    ensure_operator_tools()
    ensure_docker()
    ensure_base_image()
    ensure_pkgs_image()
    env = environment(ensure=True)
    say(f"all: ready ({time.monotonic() - started:.1f} s)")
    return env
