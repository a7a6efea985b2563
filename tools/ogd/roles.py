"""What the roles say, read without PyYAML (the tools run before the venv):
a role default or any top-level setting, and the Debian packages the roles'
apt tasks install. tests/unit checks the reader against PyYAML on the
repository's own files."""

from __future__ import annotations

import re
from pathlib import Path

from tools.ogd.common import REPO_ROOT, HostPrepError, strip_comment as _strip_comment

PKGS_TASK_GLOBS = ("roles/*/tasks/*.yml", "molecule/shared/prepare.yml", "molecule/shared/pebble.yml")
PKGS_VARS_GLOBS = ("roles/*/defaults/main.yml", "roles/*/vars/*.yml")
# Not named by any apt task: python3-apt is what the apt module installs for
# itself on its first run; python3-certbot-nginx is the nginx plugin the
# upstream guide's nginx setup uses (bench) and users add to our certbot.
PKGS_EXTRA = ("python3-apt", "python3-certbot-nginx")

_KEY_RE = re.compile(r"^(?P<indent> *)(?:- +)?(?P<key>[A-Za-z_][\w.]*):(?:\s+(?P<value>.*))?$")
_JINJA_NAME_RE = re.compile(r"\b[A-Za-z_]\w*\b")
_FLOW_LIST_RE = re.compile(r"\[([^\[\]]*)\]")
_PKG_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


def _yaml_scalar(raw: str) -> str:
    raw = _strip_comment(raw).strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    return raw


def _flow_items(raw: str) -> list[str]:
    inner = raw.strip()[1:-1]
    return [_yaml_scalar(x) for x in inner.split(",") if x.strip()]


def _block_value(lines: list[str], start: int, indent: int, value: str | None) -> str | list[str] | None:
    """The value of the key on lines[start] (at ``indent``): a scalar, a flow or
    block list of scalars, or a folded/literal block joined with spaces."""
    value = _strip_comment(value or "").strip()
    if value.startswith("["):
        return _flow_items(value)
    if value and value[0] not in ">|":
        return _yaml_scalar(value)
    items: list[str] = []
    text: list[str] = []
    for line in lines[start + 1:]:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        ind = len(line) - len(line.lstrip(" "))
        if value:  # folded or literal block: every deeper line
            if ind <= indent:
                break
            text.append(line.strip())
            continue
        body = line.strip()
        if ind < indent or (ind == indent and not body.startswith("- ")):
            break
        if body.startswith("- ") and ind >= indent:
            items.append(_yaml_scalar(body[2:]))
        elif ind > indent:
            break  # a mapping under the key: not a package list
    if value:
        return " ".join(text)
    return items or None


def yaml_top_level_values(text: str) -> dict[str, str | list[str]]:
    """Top-level keys of a vars/defaults file whose value is a scalar, a list of
    scalars or a folded expression."""
    lines = text.splitlines()
    found: dict[str, str | list[str]] = {}
    for i, line in enumerate(lines):
        m = _KEY_RE.match(line)
        if not m or m.group("indent") or line.startswith("-"):
            continue
        value = _block_value(lines, i, 0, m.group("value"))
        if value is not None:
            found[m.group("key")] = value
    return found




def defaults_file(role: str = "opengram") -> Path:
    return REPO_ROOT / "roles" / role / "defaults" / "main.yml"


def scalar(text: str, key: str) -> str | None:
    """A top-level ``key: value`` scalar, unquoted, comment dropped; None if absent,
    empty or not a scalar."""
    value = yaml_top_level_values(text).get(key)
    return value if isinstance(value, str) else None


def setting(path: Path, key: str, error: type[Exception] = HostPrepError) -> str:
    """The non-empty top-level scalar ``key`` of a YAML file, or ``error``."""
    value = scalar(path.read_text(), key)
    if not value:
        raise error(f"{key} not found as a plain `{key}: value` line in {path}")
    return value


def role_default(key: str, role: str = "opengram", error: type[Exception] = HostPrepError) -> str:
    """A role's default for ``key`` (roles/<role>/defaults/main.yml)."""
    return setting(defaults_file(role), key, error)


def apt_task_names(text: str) -> list[str | list[str]]:
    """The ``name:`` of every ``ansible.builtin.apt`` task that installs
    (state present or default), and every ``common_packages:`` given to
    roles/common's packages entry point, as written: a string or a list."""
    lines = text.splitlines()
    found: list[str | list[str]] = []
    for i, line in enumerate(lines):
        m = _KEY_RE.match(line)
        if m and m.group("key") == "common_packages":
            # The input of roles/common's packages entry point (vars of an include_role).
            value = _block_value(lines, i, len(m.group("indent")), m.group("value"))
            if value:
                found.append(value)
            continue
        if not m or m.group("key") not in ("ansible.builtin.apt", "apt"):
            continue
        base = len(line) - len(line.lstrip(" -"))
        args: dict[str, str | list[str] | None] = {}
        for j in range(i + 1, len(lines)):
            sub = lines[j]
            if not sub.strip() or sub.lstrip().startswith("#"):
                continue
            ind = len(sub) - len(sub.lstrip(" "))
            if ind <= base:
                break
            km = _KEY_RE.match(sub)
            if km and len(km.group("indent")) == ind and not sub.lstrip().startswith("-"):
                args[km.group("key")] = _block_value(lines, j, ind, km.group("value"))
        names = args.get("name") or args.get("pkg")
        if names and args.get("state", "present") in ("present", "latest"):
            found.append(names)
    return found


def resolve_packages(names: list[str | list[str]], variables: dict[str, str | list[str]]) -> list[str]:
    """Package names from apt ``name:`` values, following the role variables a
    Jinja expression names (every branch of a conditional: the union) and the
    quoted names in its list literals (``['nftables']``)."""
    out: set[str] = set()
    seen: set[str] = set()

    def expr(text: str) -> None:
        for flow in _FLOW_LIST_RE.findall(text):
            for item in flow.split(","):
                item = item.strip()
                if len(item) >= 2 and item[0] == item[-1] and item[0] in "'\"":
                    add(item[1:-1])
        for ident in _JINJA_NAME_RE.findall(text):
            if ident in variables and ident not in seen:
                seen.add(ident)
                value = variables[ident]
                if isinstance(value, list):
                    for item in value:
                        add(item)
                elif "{{" in value or ident != value:
                    # an expression (folded ">-" blocks carry no braces)
                    if any(n in variables for n in _JINJA_NAME_RE.findall(value)) or "[" in value:
                        expr(value)

    def add(item: str) -> None:
        if "{{" in item:
            expr(item)
        elif _PKG_NAME_RE.match(item):
            out.add(item)

    for entry in names:
        for item in (entry if isinstance(entry, list) else [entry]):
            add(item)
    return sorted(out)


def package_list(root: Path = REPO_ROOT) -> list[str]:
    """Every package the roles' and the shared prepare's apt tasks install, plus
    PKGS_EXTRA, sorted."""
    variables: dict[str, str | list[str]] = {}
    for pattern in PKGS_VARS_GLOBS:
        for path in sorted(root.glob(pattern)):
            variables.update(yaml_top_level_values(path.read_text()))
    names: list[str | list[str]] = []
    for pattern in PKGS_TASK_GLOBS:
        for path in sorted(root.glob(pattern)):
            names.extend(apt_task_names(path.read_text()))
    packages = set(resolve_packages(names, variables)) | set(PKGS_EXTRA)
    if not packages:
        raise HostPrepError(f"no apt packages found under {root} ({', '.join(PKGS_TASK_GLOBS)})")
    return sorted(packages)
