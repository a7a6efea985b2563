"""Reproducible releases (issue 26): two installs of the real 0.2.1 from the repository's lock,
one after the other into the same directory as the role does it (an npm project with the
rendered lock, `npm ci`), produce the same tree byte for byte (better-sqlite3's native build
included), and every package in it is at the lock's version and integrity, not the
registry's newest (hono 4.13.23 was published on 26 Nov; the 0.2.1 lock says 4.13.19): the
registry answering with newer versions changes nothing, the lock decides.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from opengram_instances import REAL_INSTALL_TIMEOUT, load_release_filters, real_lock, real_tarball

ALLOW_SCRIPTS = ["better-sqlite3", "sharp"]


def tree_digest(root: Path) -> tuple[str, int]:
    """sha256 over every path of the tree (sorted), its kind, mode and content or link target."""
    total, count = hashlib.sha256(), 0
    for top, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            path = Path(top) / name
            info = path.lstat()
            rel = str(path.relative_to(root)).encode()
            if stat.S_ISLNK(info.st_mode):
                entry = b"L " + rel + b" " + os.readlink(path).encode()
            elif stat.S_ISDIR(info.st_mode):
                entry = b"D " + rel + b" %o" % stat.S_IMODE(info.st_mode)
            else:
                entry = (b"F " + rel + b" %o " % stat.S_IMODE(info.st_mode)
                         + hashlib.sha256(path.read_bytes()).hexdigest().encode())
                count += 1
            total.update(entry + b"\n")
    return total.hexdigest(), count


def install(project: Path, plan: dict, tarball: Path) -> None:
    if project.exists():
        shutil.rmtree(project)
    project.mkdir(parents=True)
    filters = load_release_filters()
    (project / "package.json").write_text(filters.canonical_json(plan["package_json"]))
    (project / "package-lock.json").write_text(filters.canonical_json(plan["lock"]))
    shutil.copy(tarball, project / tarball.name)
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false",
           "npm_config_audit": "false",
           "NODE_EXTRA_CA_CERTS": os.environ.get("NODE_EXTRA_CA_CERTS", "/etc/ssl/certs/ca-certificates.crt")}
    result = subprocess.run(["npm", "ci", "--omit=dev"], cwd=project, env=env, capture_output=True, text=True,
                            timeout=REAL_INSTALL_TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    (project / tarball.name).unlink()


def test_two_installs_of_the_lock_are_identical_and_are_the_lock(tmp_path_factory):
    tarball = real_tarball()
    if tarball is None:
        pytest.skip("the real Opengram 0.2.1 tarball is not on this machine")
    filters = load_release_filters()
    plan = filters.opengram_release(real_lock(), "@opengramsh/opengram", "0.2.1", tarball.name,
                                    filters.opengram_file_integrity(tarball), ALLOW_SCRIPTS)
    # The role's own staging path shape: releases/<name>.partial/lib.
    project = tmp_path_factory.mktemp("reproducible") / "releases" / (plan["name"] + ".partial") / "lib"
    install(project, plan, tarball)
    first = tree_digest(project)
    installed = json.loads((project / "node_modules" / ".package-lock.json").read_text())["packages"]
    install(project, plan, tarball)
    second = tree_digest(project)
    assert first == second, "two installs of one lock differ"
    assert first[1] > 1000, first

    locked = plan["lock"]["packages"]
    for path, meta in installed.items():
        assert (meta.get("version"), meta.get("integrity")) == (locked[path]["version"], locked[path]["integrity"]), path
