"""The roles' meta/argument_specs.yml: what `ansible-doc -t role -r roles ROLE`
prints. Every option of every entry point says what it is (description), its
type, and either that it is required or its default (the real one: a role
default written as a plain value is the spec's default too). Every variable
of a role's defaults/main.yml is an option of its main entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted(ROOT.glob("roles/*/meta/argument_specs.yml"))


def role_defaults(spec: Path) -> dict:
    path = spec.parent.parent / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def options(spec: Path):
    for entry, body in yaml.safe_load(spec.read_text())["argument_specs"].items():
        assert body.get("short_description"), "%s %s: no short_description" % (spec, entry)
        for name, option in (body.get("options") or {}).items():
            yield entry, name, option


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.parts[-3])
def test_every_option_is_documented_with_type_and_default_or_required(spec):
    problems = []
    for entry, name, option in options(spec):
        where = "%s %s %s" % (spec.parts[-3], entry, name)
        if not option.get("description"):
            problems.append(where + ": no description")
        if "type" not in option:
            problems.append(where + ": no type")
        if option.get("required"):
            if "default" in option:
                problems.append(where + ": required and a default")
        elif option.get("default") is None:
            problems.append(where + ": neither required nor a default")
        if option.get("type") == "list" and "elements" not in option:
            problems.append(where + ": a list without elements")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.parts[-3])
def test_spec_defaults_are_the_role_defaults(spec):
    defaults = role_defaults(spec)
    problems = []
    for entry, name, option in options(spec):
        if name in defaults and "default" in option and option["default"] != defaults[name]:
            problems.append("%s %s %s: spec default %r, defaults/main.yml %r"
                            % (spec.parts[-3], entry, name, option["default"], defaults[name]))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("spec", [s for s in SPECS if role_defaults(s)], ids=lambda p: p.parts[-3])
def test_every_role_default_is_an_option_of_main(spec):
    main = yaml.safe_load(spec.read_text())["argument_specs"]["main"].get("options") or {}
    missing = sorted(set(role_defaults(spec)) - set(main))
    assert not missing, "%s: defaults/main.yml variables without a spec: %s" % (spec.parts[-3], missing)


def test_a_spec_option_without_default_or_required_fails(tmp_path):
    spec = tmp_path / "roles" / "x" / "meta" / "argument_specs.yml"
    spec.parent.mkdir(parents=True)
    spec.write_text("argument_specs:\n  main:\n    short_description: x\n"
                    "    options:\n      x_a: {type: str, description: A.}\n")
    with pytest.raises(AssertionError, match="neither required nor a default"):
        test_every_option_is_documented_with_type_and_default_or_required(spec)
