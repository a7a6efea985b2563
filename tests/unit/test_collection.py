"""The collection opengram_deploy.opengram (tools/collection.py): galaxy.yml's
dependencies agree with requirements.yml, and the built tarball carries what a
user runs and none of the development files."""

import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tools import collection  # noqa: E402
from tools.ogd.galaxy import REQUIREMENTS_YML, parse_requirements_yml  # noqa: E402


def test_galaxy_dependencies_agree_with_requirements_yml():
    pins = parse_requirements_yml(REQUIREMENTS_YML.read_text())
    assert collection.dependency_problems(collection.galaxy(), pins) == []


@pytest.mark.parametrize("deps, pins, says", [
    ({"ansible.posix": ">=2.1.0"}, {}, "requirements.yml does not pin: add it there"),
    ({}, {"ansible.posix": "2.1.0"}, "galaxy.yml's dependencies do not list"),
    ({"ansible.posix": ">=2.2.0"}, {"ansible.posix": "2.1.0"}, "outside galaxy.yml's '>=2.2.0'"),
    ({"ansible.posix": ">=2.0.0,<2.1.0"}, {"ansible.posix": "2.1.0"}, "outside"),
])
def test_a_disagreement_is_named(deps, pins, says):
    found = collection.dependency_problems({"dependencies": deps}, pins)
    assert len(found) == 1 and says in found[0]


@pytest.mark.parametrize("version, spec, ok", [
    ("2.1.0", "*", True), ("2.1.0", ">=2.1.0", True), ("2.1.0", ">2.1.0", False),
    ("2.1.0", ">=2.0.0,<3.0.0", True), ("3.0.0", ">=2.0.0,<3.0.0", False), ("2.1.0", "2.1.0", True),
    ("2.10.0", ">=2.9.0", True),
])
def test_satisfies(version, spec, ok):
    assert collection.satisfies(version, spec) is ok


def test_namespace_is_ours_not_upstreams():
    assert collection.fqcn() == "opengram_deploy.opengram"
    assert not collection.fqcn().startswith("opengramsh.")


def test_the_tarball_holds_what_runs_and_no_development_files(tmp_path):
    tarball = collection.build(tmp_path)
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
    for needed in ("MANIFEST.json", "FILES.json", "meta/runtime.yml", "playbooks/site.yml", "site.yml",
                   "plugins/modules/common_file.py", "plugins/action/common_file.py",
                   "plugins/filter/opengram_input.py", "plugins/module_utils/common_atomic.py",
                   "roles/opengram/files/locks/0.2.1/package-lock.json", "roles/nginx/meta/argument_specs.yml",
                   "tests/sanity/ignore-2.19.txt", "README.md", "LICENSE"):
        assert needed in names, needed
    for kept_out in ("molecule", "tools", "bench", "collections", "tests/unit", "tests/fixtures", ".ci",
                     "inventories/sandbox", "requirements-dev.txt"):
        assert not any(name == kept_out or name.startswith(kept_out + "/") for name in names), kept_out
    assert not any("__pycache__" in name for name in names)
