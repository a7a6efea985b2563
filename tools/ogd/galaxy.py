"""The collections pinned in requirements.yml (run time) and
requirements-dev.yml (tests), extracted from the ``ansible`` wheel on PyPI
(Galaxy is not reachable)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from tools.ogd.common import (REPO_ROOT, STAMP_NAME, HostPrepError, cache_dir, cache_lock, log_path,
                              run_logged, sha256_hex, stamp_matches, step, strip_comment as _strip_comment,
                              write_stamp)
from tools.ogd.venv import _read_bytes, _venv_usable, ensure_venv, venv_path

REQUIREMENTS_YML = REPO_ROOT / "requirements.yml"
REQUIREMENTS_DEV_YML = REPO_ROOT / "requirements-dev.yml"
# The ``ansible`` community package whose wheel carries the collections.
ANSIBLE_BUNDLE_VERSION = "12.3.0"
COLLECTIONS_REVISION = 1

_FQCN = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")
_EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]+)?$")
_ITEM_KEYS = {"name", "version", "type", "source"}


def _scalar(raw: str, where: str) -> str:
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    if value[:1] in "'\"[{&*!|>":
        raise HostPrepError(f"{where}: unsupported YAML value {value!r}")
    return value


def parse_requirements_yml(text: str, source: str = "requirements.yml") -> dict[str, str]:
    """Parse the restricted requirements.yml this project uses.

    Accepted shape (a subset of ansible-galaxy's format, without PyYAML)::

        ---
        collections:
          - name: community.docker
            version: 4.8.5        # exact versions only

    Returns ``{fqcn: version}`` in file order; raises HostPrepError otherwise.
    """
    pins: dict[str, str] = {}
    items: list[dict[str, str]] = []
    in_collections = False
    item_indent = None
    current: dict[str, str] | None = None
    key_indent: int | None = None  # column of the current item's keys
    for lineno, raw in enumerate(text.splitlines(), 1):
        where = f"{source}:{lineno}"
        line = _strip_comment(raw).rstrip()
        if not line.strip() or line.strip() in ("---", "..."):
            continue
        if "\t" in line[: len(line) - len(line.lstrip())]:
            raise HostPrepError(f"{where}: tabs are not allowed for indentation")
        indent = len(line) - len(line.lstrip())
        body = line.strip()
        if indent == 0:
            key, sep, rest = body.partition(":")
            if not sep:
                raise HostPrepError(f"{where}: expected 'collections:'")
            if key.strip() != "collections":
                raise HostPrepError(f"{where}: unsupported top-level key {key.strip()!r} "
                                    "(only 'collections' is supported)")
            if rest.strip() not in ("", "[]"):
                raise HostPrepError(f"{where}: 'collections:' must be followed by a list")
            in_collections = True
            continue
        if not in_collections:
            raise HostPrepError(f"{where}: unexpected indented line")
        if body.startswith("- ") or body == "-":
            if item_indent is None:
                item_indent = indent
            elif indent != item_indent:
                raise HostPrepError(f"{where}: inconsistent list indentation")
            current = {}
            items.append(current)
            key_indent = None
            rest_of_line = body[1:]
            body = rest_of_line.strip()
            if not body:
                continue
            # the rest of a "- key: v" line is item content at its own column
            indent = indent + 1 + len(rest_of_line) - len(rest_of_line.lstrip())
        elif current is None or item_indent is None or indent <= item_indent:
            raise HostPrepError(f"{where}: expected a list item '- name: ...'")
        if key_indent is None:
            key_indent = indent
        elif indent != key_indent:
            raise HostPrepError(f"{where}: indentation differs from the item's other keys")
        key, sep, rest = body.partition(":")
        key = key.strip()
        if not sep or not rest.strip():
            raise HostPrepError(f"{where}: expected 'key: value', got {body!r}")
        if key not in _ITEM_KEYS:
            raise HostPrepError(f"{where}: unsupported key {key!r} "
                                f"(supported: {', '.join(sorted(_ITEM_KEYS))})")
        if key in current:
            raise HostPrepError(f"{where}: duplicate key {key!r}")
        current[key] = _scalar(rest, where)
    for n, item in enumerate(items, 1):
        name = item.get("name")
        if not name:
            raise HostPrepError(f"{source}: collection #{n} has no name")
        if not _FQCN.match(name):
            raise HostPrepError(f"{source}: {name!r} is not a namespace.name")
        version = item.get("version")
        if not version:
            raise HostPrepError(f"{source}: {name} has no version (pin it exactly)")
        if not _EXACT_VERSION.match(version):
            raise HostPrepError(f"{source}: {name} version {version!r} is not an exact "
                                "version (ranges cannot be checked against the wheel)")
        if item.get("type", "galaxy") != "galaxy":
            raise HostPrepError(f"{source}: {name}: only type 'galaxy' is supported")
        if name in pins:
            raise HostPrepError(f"{source}: {name} is listed twice")
        pins[name] = version
    if not pins:
        raise HostPrepError(f"{source}: no collections listed")
    return pins


def collections_path() -> Path:
    """The directory for ``collections_path`` / ``ANSIBLE_COLLECTIONS_PATH``:
    one per set of pins (like the venv), so that two checkouts of other
    commits on one machine never change each other's collections mid-run."""
    text, _ = requirements_pins()
    return cache_dir() / f"collections-{collections_key(text)[:16]}"


def collections_key(requirements_text: bytes, bundle: str = ANSIBLE_BUNDLE_VERSION) -> str:
    return sha256_hex(f"collections-r{COLLECTIONS_REVISION}", f"ansible=={bundle}",
                      requirements_text)


def extract_collections(wheel: Path, pins: dict[str, str], dest: Path) -> dict[str, str]:
    """Extract ``ansible_collections/<ns>/<name>/`` of each pinned collection from
    ``wheel`` into ``dest/ansible_collections/...``; check each MANIFEST.json
    version equals its pin and that every dependency is pinned too.

    Returns {fqcn: version}. ``dest`` should be new/empty."""
    try:
        zf = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise HostPrepError(f"cannot open {wheel}: {exc}") from exc
    found: dict[str, str] = {}
    with zf:
        names = zf.namelist()
        for fqcn, pinned in pins.items():
            ns, coll = fqcn.split(".")
            prefix = f"ansible_collections/{ns}/{coll}/"
            members = [n for n in names if n.startswith(prefix)]
            if f"{prefix}MANIFEST.json" not in members:
                raise HostPrepError(f"{fqcn} is not in {wheel.name} "
                                    f"(requirements.yml pins {fqcn} {pinned})")
            for member in members:
                rel = PurePosixPath(member)
                if rel.is_absolute() or ".." in rel.parts:
                    raise HostPrepError(f"unsafe path {member!r} in {wheel.name}")
                target = dest.joinpath(*rel.parts)
                if member.endswith("/"):
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
                mode = (zf.getinfo(member).external_attr >> 16) & 0o777
                if mode:
                    os.chmod(target, mode | 0o600)
    deps: dict[str, dict] = {}
    for fqcn, pinned in pins.items():
        info = read_manifest(dest, fqcn)
        version = info.get("version")
        if version != pinned:
            raise HostPrepError(
                f"requirements.yml pins {fqcn} {pinned}, but {wheel.name} ships "
                f"{version}: change the pin to {version} (or the ansible bundle version)")
        found[fqcn] = version
        deps[fqcn] = info.get("dependencies") or {}
    for fqcn, needed in deps.items():
        missing = sorted(d for d in needed if d not in pins)
        if missing:
            raise HostPrepError(f"{fqcn} depends on {', '.join(missing)}, which "
                                "requirements.yml does not list")
    return found


def read_manifest(root: Path, fqcn: str) -> dict:
    ns, coll = fqcn.split(".")
    path = root / "ansible_collections" / ns / coll / "MANIFEST.json"
    try:
        return json.loads(path.read_text())["collection_info"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HostPrepError(f"bad or missing {path}: {exc}") from exc


def installed_collections_ok(root: Path, pins: dict[str, str]) -> bool:
    try:
        return all(read_manifest(root, f).get("version") == v for f, v in pins.items())
    except HostPrepError:
        return False


def _pip_command() -> list[str]:
    """pip of the running interpreter, or of the dev venv when it has none."""
    probe = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True)
    if probe.returncode == 0:
        return [sys.executable, "-m", "pip"]
    venv = venv_path()
    if _venv_usable(venv):
        return [str(venv / "bin" / "python"), "-m", "pip"]
    return [str(ensure_venv() / "bin" / "python"), "-m", "pip"]


def ansible_wheel(bundle: str = ANSIBLE_BUNDLE_VERSION) -> tuple[Path, bool]:
    """The cached ``ansible-<bundle>`` wheel, downloaded once. (path, downloaded?)"""
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    pattern = f"ansible-{bundle}-*.whl"
    for whl in sorted(wheels.glob(pattern)):
        if zipfile.is_zipfile(whl):
            return whl, False
        whl.unlink()
    log = log_path("pip-download")
    run_logged([*_pip_command(), "--disable-pip-version-check", "download", "--no-deps",
                "--only-binary=:all:", f"ansible=={bundle}", "-d", str(wheels)],
               log, f"pip download ansible=={bundle}", timeout=1800)
    for whl in sorted(wheels.glob(pattern)):
        if zipfile.is_zipfile(whl):
            return whl, True
    raise HostPrepError(f"pip download left no {pattern} in {wheels}; log: {log}")


def requirements_pins(files: tuple[Path, ...] = (REQUIREMENTS_YML, REQUIREMENTS_DEV_YML)) -> tuple[bytes, dict[str, str]]:
    """The text of the requirements files (one after the other) and their pins
    together; a collection pinned in two of them is an error."""
    text, pins = b"", {}
    for path in files:
        raw = _read_bytes(path)
        text += raw
        for fqcn, version in parse_requirements_yml(raw.decode(), str(path)).items():
            if fqcn in pins:
                raise HostPrepError(f"{path}: {fqcn} is pinned in {files[0].name} already (one file per collection)")
            pins[fqcn] = version
    return text, pins


def ensure_collections() -> Path:
    """Ensure the pinned collections are on the collections path; return that path."""
    with step("collections") as done, cache_lock("collections"):
        text, pins = requirements_pins()
        key = collections_key(text)
        dest = collections_path()
        listing = ", ".join(f"{k} {v}" for k, v in pins.items())
        if stamp_matches(dest / STAMP_NAME, key) and installed_collections_ok(dest, pins):
            done(f"up to date in {dest} ({listing})")
            return dest
        wheel, downloaded = ansible_wheel()
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="collections-", dir=dest.parent))
        os.chmod(staging, 0o755)  # mkdtemp makes it 0700
        try:
            extract_collections(wheel, pins, staging)
            write_stamp(staging / STAMP_NAME, key, ansible=ANSIBLE_BUNDLE_VERSION,
                        collections=pins)
            old = None
            if dest.exists():
                old = dest.with_name(f"{dest.name}.old-{os.getpid()}")
                os.replace(dest, old)
            os.replace(staging, dest)
            if old:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        how = "downloaded ansible " if downloaded else "cached ansible "
        done(f"extracted from {how}{ANSIBLE_BUNDLE_VERSION} wheel into {dest} ({listing})")
        return dest
