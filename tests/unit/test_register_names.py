"""No task registers its result under the name of a role variable.

A registered result outranks role vars and defaults for the rest of the run:
once `register: __nginx_dropin` had run, the role's own `__nginx_dropin` (the
drop-in's path) was the task's result, and the next entry point that wrote
the drop-in wrote to "{'changed': True, ...}" (fleet and nginx converge, 1
Dec 2026). Checked over every role's tasks and handlers."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def tasks(node):
    if isinstance(node, list):
        for item in node:
            yield from tasks(item)
    elif isinstance(node, dict):
        yield node
        for key in ("block", "rescue", "always"):
            yield from tasks(node.get(key, []))


def registers():
    found = {}
    for path in sorted(ROOT.glob("roles/*/tasks/*.yml")) + sorted(ROOT.glob("roles/*/handlers/*.yml")):
        for task in tasks(yaml.safe_load(path.read_text()) or []):
            if "register" in task:
                found.setdefault(task["register"], []).append(str(path.relative_to(ROOT)))
    return found


def role_variables():
    names = {}
    for path in sorted(ROOT.glob("roles/*/vars/*.yml")) + sorted(ROOT.glob("roles/*/defaults/main.yml")):
        for name in (yaml.safe_load(path.read_text()) or {}):
            names.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return names


def test_no_register_shadows_a_role_variable():
    variables = role_variables()
    clashes = {name: (where, variables[name]) for name, where in registers().items() if name in variables}
    assert not clashes, clashes


def test_the_check_sees_the_registers():
    assert "__nginx_look" in registers() and "__nginx_site_name" in role_variables()
