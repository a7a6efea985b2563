"""Running the project's playbooks from the checks, shared by every scenario
(molecule/shared/tests and molecule/preflight/tests import it)."""

import base64
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


# A bcrypt hash, as nginx's user file holds it and base64-encoded as Caddy's site file does.
BCRYPT_HASH = re.compile(r"\$2[abxy]\$[0-9]{2}\$[./A-Za-z0-9]{53}|(?<![A-Za-z0-9+/])JDJ[A-Za-z0-9+/]{77}")
# The login hashes the role keeps on the host (roles/opengram tasks/access.yml), name:hash a line.
ACCESS_HASHES_FILE = "/etc/opengram/access.htpasswd"


def host_access_hashes(host):
    """{name: hash} of the login hashes kept on the host (empty without the file)."""
    result = host.run("cat %s" % ACCESS_HASHES_FILE)
    return dict(line.split(":", 1) for line in result.stdout.splitlines() if ":" in line) if result.rc == 0 else {}


def assert_secrets_absent(site, run, what, passwords=(), hashes=()):
    """Neither the instance secret, nor the access password (nor `passwords`), nor a
    bcrypt hash (any, the host's kept ones and `hashes` in either form) in what a run printed."""
    text = output(run)
    assert site.token, "the scenario has no instance secret to look for"
    assert site.token not in text, "the instance secret leaked in %s" % what
    for password in (site.access_password, *passwords):
        assert not password or password not in text, "the access password leaked in %s" % what  # issue 11
    for hashed in (*host_access_hashes(site.host).values(), *hashes):
        for form in (hashed, base64.b64encode(hashed.encode()).decode()):
            assert form not in text, "a login hash leaked in %s" % what
    found = BCRYPT_HASH.search(text)
    assert not found, "a bcrypt hash leaked in %s: ...%s..." % (what, text[max(0, found.start() - 80):found.start()])
