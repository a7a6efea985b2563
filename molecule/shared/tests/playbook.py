"""Running the project's playbooks from the checks, shared by every scenario
(molecule/shared/tests and molecule/preflight/tests import it)."""

import json
import os
import re
import subprocess
import tempfile
from importlib import util


def _load_recap():
    """tools/ogd/recap.py by its path (the repository is not on sys.path here, and
    putting it there would shadow the molecule package with molecule/)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tools", "ogd", "recap.py")
    spec = util.spec_from_file_location("ogd_recap", path)
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


parse_recap = _load_recap().parse_recap

INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE", "")
PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.getcwd())


def playbook_argv(*extra_args, playbook="site.yml"):
    """ansible-playbook against the scenario's inventory; `playbook` is relative to the project."""
    return ["ansible-playbook", "-i", INVENTORY, os.path.join(PROJECT, playbook), *extra_args]


def playbook_env():
    return dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")


def run_playbook(*extra_args, playbook="site.yml"):
    """Run a playbook (site.yml unless told) to the end; returns the completed process."""
    return subprocess.run(playbook_argv(*extra_args, playbook=playbook), capture_output=True, text=True,
                          cwd=PROJECT, env=playbook_env())


def run_with_vars(values, *extra_args, playbook="site.yml"):
    """run_playbook with extra vars from a private file (-e @file): secrets stay off the command line."""
    handle, path = tempfile.mkstemp(suffix=".json")
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(values, out)
        return run_playbook(*extra_args, "-e", "@" + path, playbook=playbook)
    finally:
        os.unlink(path)


def output(run, tail=None):
    """What a run printed; Ansible 2.19 reports errors on stderr, so both.
    With `tail`, only the last `tail` characters of stdout (and half as many of stderr)."""
    if tail:
        return run.stdout[-tail:] + "\n--- stderr ---\n" + run.stderr[-(tail // 2):]
    return run.stdout + "\n--- stderr ---\n" + run.stderr


def recap(text, host):
    """The PLAY RECAP counters of one host, e.g. {'ok': 30, 'changed': 0, ...}."""
    return parse_recap(text)[host]


def task_statuses(stdout, task):
    """The status lines (ok/changed/skipping/fatal) printed for one task."""
    lines = stdout.splitlines()
    statuses = []
    for i, line in enumerate(lines):
        if line.startswith("TASK [%s]" % task):
            for follow in lines[i + 1:]:
                if follow.startswith(("TASK [", "RUNNING HANDLER [", "PLAY [")):
                    break
                if re.match(r"^(ok|changed|skipping|fatal):", follow):
                    statuses.append(follow.split(":", 1)[0])
    return statuses


def assert_secrets_absent(site, run, what):
    """Neither the instance secret nor the access password in what a run printed."""
    assert site.token, "the scenario has no instance secret to look for"
    assert site.token not in output(run), "the instance secret leaked in %s" % what
    assert not site.access_password or site.access_password not in output(run), \
        "the access password leaked in %s" % what  # issue 11
