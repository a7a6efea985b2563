"""What a host installs: the release's package.json, its dependency lock and its name.

A release is identified by what is installed, not by its version string: the
name of its directory under releases/ is ``<version>+<id>``, where ``id`` is
the first 12 hex digits of the sha256 of the package.json and lock the host
installs with (the lock holds the package's own integrity: the registry's, or
the tarball's for a tarball install). Another tarball or another lock for the
same version is another release.

The locks are npm's own format (package-lock.json, lockfileVersion 3) of a
project that depends on nothing but the package; ``tools/lock.py`` writes
them. Runs on the controller; tools/lock.py and the tests import it.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re

# The name of the npm project a release directory's lib/ is (package.json, lock).
PROJECT_NAME = "opengram-release"
ID_LENGTH = 12
_NAMED = re.compile(r"^(?P<version>.+)[+.](?P<id>[0-9a-f]{%d})$" % ID_LENGTH)


def opengram_file_integrity(path):
    """npm's integrity string (sha512, base64) of a file on the controller."""
    digest = hashlib.sha512()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return "sha512-" + base64.b64encode(digest.digest()).decode("ascii")


def canonical_json(data):
    """The one serialisation a release's id is computed over (and its files are written in)."""
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def lock_problems(lock, package, version, lock_path="the lock"):
    """What makes `lock` (parsed JSON) unusable for `package`@`version` (empty: usable)."""
    if not isinstance(lock, dict) or not isinstance(lock.get("packages"), dict):
        return ["%s is not an npm lockfile with a 'packages' map (lockfileVersion 2 or 3). "
                "Make it again with: python3 tools/lock.py %s" % (lock_path, version)]
    problems = []
    if lock.get("lockfileVersion") not in (2, 3):
        problems.append("%s has lockfileVersion %r; npm ci on the hosts needs 2 or 3. Make it again with: "
                        "python3 tools/lock.py %s" % (lock_path, lock.get("lockfileVersion"), version))
    root = lock["packages"].get("", {})
    entry = lock["packages"].get("node_modules/" + package, {})
    if package not in root.get("dependencies", {}) or entry.get("version") != version:
        problems.append("%s does not lock %s %s (it locks %s). Make it again with: python3 tools/lock.py %s"
                        % (lock_path, package, version, entry.get("version") or "nothing of it", version))
    elif not str(entry.get("integrity", "")).startswith("sha512-"):
        problems.append("%s has no sha512 integrity for %s %s. Make it again with: python3 tools/lock.py %s"
                        % (lock_path, package, version, version))
    return problems


def opengram_release(lock, package, version, tarball_name="", tarball_integrity="", allow_scripts=()):
    """The release to install: {name, id, package_json, lock (None: unlocked)}.

    `lock` is the parsed lock of `version` (None when the operator opted out of
    locking); `tarball_name`/`tarball_integrity` describe a tarball install
    (the tarball is copied next to the package.json as `tarball_name`);
    `allow_scripts` names the dependencies whose install scripts may run
    (package.json's allowScripts: npm >= 11 refuses --allow-scripts in a
    project, older npm ignores the field and runs them anyway).
    """
    spec = ("file:" + tarball_name) if tarball_name else str(version)
    package_json = {"name": PROJECT_NAME, "private": True, "dependencies": {package: spec}}
    if allow_scripts:
        package_json["allowScripts"] = {name: True for name in allow_scripts}
    if lock is None:
        identity = {"package_json": package_json, "integrity": tarball_integrity, "unlocked": True}
        rendered = None
    else:
        rendered = copy.deepcopy(lock)
        rendered["name"] = PROJECT_NAME
        root = rendered["packages"].setdefault("", {})
        root["name"] = PROJECT_NAME
        root["dependencies"] = {package: spec}
        entry = rendered["packages"]["node_modules/" + package]
        if tarball_name:
            entry["resolved"] = "file:" + tarball_name
            entry["integrity"] = tarball_integrity
        identity = {"package_json": package_json, "lock": rendered}
    release_id = hashlib.sha256(canonical_json(identity).encode("utf-8")).hexdigest()[:ID_LENGTH]
    separator = "." if "+" in str(version) else "+"
    return {
        "name": "%s%s%s" % (version, separator, release_id),
        "id": release_id,
        "package_json": package_json,
        "lock": rendered,
    }


def opengram_release_problems(locks_dir, package, version, locked=True, tarball=""):
    """The preflight's word on the release: what is wrong with the lock and the tarball (empty: fine).

    Reads, on the controller, <locks_dir>/<version>/package-lock.json (when
    `locked`) and the tarball's package.json (when one is given and exists).
    """
    import os
    import tarfile

    problems = []
    if tarball and os.path.isfile(tarball):
        try:
            with tarfile.open(tarball) as tar:
                member = tar.extractfile("package/package.json")
                manifest = json.loads(member.read().decode("utf-8")) if member else {}
        except (OSError, tarfile.TarError, KeyError, ValueError) as exc:
            manifest = {"error": str(exc)}
        if manifest.get("name") != package or manifest.get("version") != str(version):
            problems.append(
                "opengram_npm_tarball='%s' holds %s %s, not opengram_npm_package=%s opengram_version=%s. "
                "Set opengram_version to the tarball's version, or give the tarball of %s."
                % (tarball, manifest.get("name", "no package.json"), manifest.get("version", ""),
                   package, version, version))
    if not locked:
        return problems
    path = os.path.join(str(locks_dir), str(version), "package-lock.json")
    fix = ("Make it with `python3 tools/lock.py %s%s` (from a checkout of opengram-deploy; --out DIR for "
           "your own opengram_npm_locks_dir), review and commit it; or set opengram_npm_locked: false to let "
           "npm resolve the dependencies at install time (not reproducible: hosts installed on different days "
           "run different code)." % (version, " --tarball " + tarball if tarball else ""))
    if not os.path.isfile(path):
        return problems + ["No dependency lock for %s %s: %s does not exist (opengram_npm_locks_dir='%s'). %s"
                           % (package, version, path, locks_dir, fix)]
    try:
        with open(path, encoding="utf-8") as fh:
            lock = json.load(fh)
    except (OSError, ValueError) as exc:
        return problems + ["%s cannot be read as JSON (%s). %s" % (path, exc, fix)]
    return problems + lock_problems(lock, package, version, path)


def opengram_release_version(name):
    """The package version of a release directory's name (names without an id are versions)."""
    match = _NAMED.match(str(name))
    return match.group("version") if match else str(name)


class FilterModule:
    def filters(self):
        return {
            "opengram_file_integrity": opengram_file_integrity,
            "opengram_release": opengram_release,
            "opengram_release_version": opengram_release_version,
            "opengram_release_problems": opengram_release_problems,
            "opengram_canonical_json": canonical_json,
        }
