"""The release a host installs (issue 26): its name is its identity (package integrity and lock),
the preflight refuses a missing or wrong lock with the command that makes one, and the
repository's locks are complete (exact versions, integrity, no registry URLs)."""

import json
import tarfile
from pathlib import Path

import pytest

from role_modules import load

ROOT = Path(__file__).resolve().parents[2]
release = load(ROOT / "plugins/filter/opengram_release.py")
releases_module = load(ROOT / "plugins/modules/opengram_releases.py")
PKG = "@opengramsh/opengram"
LOCKS = ROOT / "roles/opengram/files/locks"


def lock_of(version="0.2.1", integrity="sha512-AAAA", deps=None):
    packages = {"": {"name": release.PROJECT_NAME, "dependencies": {PKG: version}},
                "node_modules/" + PKG: {"version": version, "integrity": integrity}}
    for name, ver in (deps or {}).items():
        packages["node_modules/" + name] = {"version": ver, "integrity": "sha512-" + name}
    return {"name": release.PROJECT_NAME, "lockfileVersion": 3, "requires": True, "packages": packages}


def tarball(tmp_path, name, version, extra=b""):
    path = tmp_path / name
    manifest = json.dumps({"name": PKG, "version": version}).encode() + extra
    src = tmp_path / ("src-" + name)
    (src / "package").mkdir(parents=True)
    (src / "package" / "package.json").write_bytes(manifest)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src / "package", arcname="package")
    return path


def test_the_same_inputs_make_the_same_release_and_its_name_carries_the_version():
    a = release.opengram_release(lock_of(), PKG, "0.2.1", allow_scripts=["better-sqlite3"])
    b = release.opengram_release(lock_of(), PKG, "0.2.1", allow_scripts=["better-sqlite3"])
    assert a == b
    assert a["name"] == "0.2.1+" + a["id"] and len(a["id"]) == 12
    assert release.opengram_release_version(a["name"]) == "0.2.1"
    assert a["package_json"]["dependencies"] == {PKG: "0.2.1"}
    assert a["package_json"]["allowScripts"] == {"better-sqlite3": True}


def test_another_lock_or_another_tarball_of_the_same_version_is_another_release(tmp_path):
    base = release.opengram_release(lock_of(deps={"hono": "4.13.19"}), PKG, "0.2.1")
    newer_dep = release.opengram_release(lock_of(deps={"hono": "4.13.23"}), PKG, "0.2.1")
    assert base["name"] != newer_dep["name"]

    one = tarball(tmp_path, "one.tgz", "0.2.1")
    two = tarball(tmp_path, "two.tgz", "0.2.1", extra=b" ")
    first = release.opengram_release(lock_of(), PKG, "0.2.1", "pkg.tgz", release.opengram_file_integrity(one))
    second = release.opengram_release(lock_of(), PKG, "0.2.1", "pkg.tgz", release.opengram_file_integrity(two))
    assert first["name"] != second["name"]
    # The tarball install's lock names the tarball and its own integrity.
    entry = first["lock"]["packages"]["node_modules/" + PKG]
    assert entry["resolved"] == "file:pkg.tgz"
    assert entry["integrity"] == release.opengram_file_integrity(one)
    assert first["lock"]["packages"][""]["dependencies"] == {PKG: "file:pkg.tgz"}
    assert first["package_json"]["dependencies"] == {PKG: "file:pkg.tgz"}


def test_rendering_does_not_change_the_lock_it_was_given():
    lock = lock_of()
    before = json.dumps(lock, sort_keys=True)
    release.opengram_release(lock, PKG, "0.2.1", "pkg.tgz", "sha512-BBBB")
    assert json.dumps(lock, sort_keys=True) == before


def test_an_unlocked_release_has_no_lock_and_another_name():
    locked = release.opengram_release(lock_of(), PKG, "0.2.1")
    unlocked = release.opengram_release(None, PKG, "0.2.1")
    assert unlocked["lock"] is None and unlocked["name"] != locked["name"]


def test_a_version_with_build_metadata_keeps_a_valid_name():
    plan = release.opengram_release(lock_of("1.0.0+build5"), PKG, "1.0.0+build5")
    assert plan["name"] == "1.0.0+build5." + plan["id"]
    assert release.opengram_release_version(plan["name"]) == "1.0.0+build5"


@pytest.mark.parametrize("name", ["0.2.1", "0.2.1+0123456789ab", "1.0.0-rc.1+abcdefabcdef", "1.0.0+b.0123456789ab",
                                  "0.2.1+xyz", "0.2.1+0123456789"])
def test_the_module_and_the_filter_read_a_release_name_alike(name):
    assert releases_module.version_of(name) == release.opengram_release_version(name)


def test_the_preflight_refuses_a_missing_lock_with_the_command_that_makes_one(tmp_path):
    (problem,) = release.opengram_release_problems(str(tmp_path), PKG, "9.9.9")
    assert "No dependency lock for @opengramsh/opengram 9.9.9" in problem
    assert str(tmp_path / "9.9.9" / "package-lock.json") in problem
    assert "python3 tools/lock.py 9.9.9" in problem and "opengram_npm_locked: false" in problem
    assert release.opengram_release_problems(str(tmp_path), PKG, "9.9.9", locked=False) == []


def test_the_preflight_refuses_a_lock_of_another_version_and_a_tarball_of_another_version(tmp_path):
    (tmp_path / "0.2.1").mkdir()
    (tmp_path / "0.2.1" / "package-lock.json").write_text(json.dumps(lock_of("0.2.0")))
    (problem,) = release.opengram_release_problems(str(tmp_path), PKG, "0.2.1")
    assert "does not lock @opengramsh/opengram 0.2.1 (it locks 0.2.0)" in problem
    (tmp_path / "0.2.1" / "package-lock.json").write_text("{not json")
    (problem,) = release.opengram_release_problems(str(tmp_path), PKG, "0.2.1")
    assert "cannot be read as JSON" in problem

    other = tarball(tmp_path, "other.tgz", "0.2.2")
    (problem,) = release.opengram_release_problems(str(tmp_path), PKG, "0.2.1", locked=False, tarball=str(other))
    assert "holds @opengramsh/opengram 0.2.2, not opengram_npm_package=@opengramsh/opengram opengram_version=0.2.1" \
        in problem


@pytest.mark.parametrize("lock", sorted(LOCKS.glob("*/package-lock.json")), ids=lambda p: p.parent.name)
def test_every_lock_in_the_repository_is_complete(lock):
    version = lock.parent.name
    data = json.loads(lock.read_text())
    assert release.lock_problems(data, PKG, version, str(lock)) == []
    assert lock.read_text() == release.canonical_json(data), "not written by tools/lock.py (canonical JSON)"
    for path, meta in data["packages"].items():
        if not path:
            continue
        if meta.get("link"):
            continue
        assert meta.get("version") and str(meta.get("integrity", "")).startswith("sha512-"), path
        assert "resolved" not in meta, "%s: a registry URL in the lock (the host's registry serves it)" % path


def test_lock_tool_writes_a_complete_canonical_lock_of_a_packed_release(tmp_path):
    """tools/lock.py on the stand-in (no dependencies: npm resolves offline): the lock names the
    package at its version with the tarball's integrity, no registry URL, in canonical JSON."""
    import importlib.util

    def module(path, name):
        spec = importlib.util.spec_from_file_location(name, ROOT / path)
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
        return loaded

    build = module("tests/fixtures/opengram-standin/build.py", "standin_build")
    lock_tool = module("tools/lock.py", "ogd_lock")
    tarball = build.build("0.3.0", tmp_path / "dist")
    written = tmp_path / "dist" / "locks" / "0.3.0" / "package-lock.json"
    data = json.loads(written.read_text())
    assert written.read_text() == release.canonical_json(data)
    assert release.lock_problems(data, PKG, "0.3.0") == []
    entry = data["packages"]["node_modules/" + PKG]
    assert entry["integrity"] == release.opengram_file_integrity(tarball) and "resolved" not in entry
    assert data["packages"][""]["dependencies"] == {PKG: "0.3.0"}
    with pytest.raises(lock_tool.LockError, match="not @opengramsh/opengram 0.3.1"):
        lock_tool.make_lock("0.3.1", tarball=tarball, offline=True)
