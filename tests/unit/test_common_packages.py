"""roles/common/tasks/packages.yml installs without recommended packages unless
common_packages_install_recommends is true: the apt task, the check-mode
simulation and the images that model a converged host (tools/ogd/docker.py's
apt_build_script) agree with the default in meta/argument_specs.yml."""

from __future__ import annotations

import inspect
from pathlib import Path

import yaml

from tools.ogd import docker

ROOT = Path(__file__).resolve().parents[2]
TASKS = yaml.safe_load((ROOT / "roles/common/tasks/packages.yml").read_text())
SPEC = yaml.safe_load((ROOT / "roles/common/meta/argument_specs.yml").read_text())
OPTION = "common_packages_install_recommends"


def task(module: str) -> dict:
    found = [t for t in TASKS if module in t]
    assert len(found) == 1, "%d tasks use %s" % (len(found), module)
    return found[0]


def test_the_option_is_documented_as_off_by_default():
    option = SPEC["argument_specs"]["packages"]["options"][OPTION]
    assert option["type"] == "bool" and option["default"] is False


def test_the_apt_task_uses_the_option_with_the_documented_default():
    apt = task("ansible.builtin.apt")["ansible.builtin.apt"]
    assert apt["install_recommends"] == "{{ %s | default(false) | bool }}" % OPTION


def test_the_check_mode_simulation_matches_the_apt_task():
    sims = [t for t in TASKS if "--simulate" in str(t.get("ansible.builtin.command", ""))]
    assert len(sims) == 1
    argv = " ".join(sims[0]["ansible.builtin.command"]["argv"].split())
    assert "([] if %s | default(false) | bool else ['--no-install-recommends'])" % OPTION in argv


def test_images_install_like_the_roles():
    default = inspect.signature(docker.apt_build_script).parameters["install_recommends"].default
    assert default is SPEC["argument_specs"]["packages"]["options"][OPTION]["default"]
    assert "--no-install-recommends nginx" in docker.apt_build_script(["nginx"])
    assert "--no-install-recommends" not in docker.apt_build_script(["nginx"], install_recommends=True)
