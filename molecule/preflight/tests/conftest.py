"""Fixtures of the preflight scenario: one fresh host, site.yml run against it.

The host is reached with testinfra's docker backend; "unchanged" is measured
on the host itself (files newer than a marker, installed packages, users).
"""

import json
import os
import re
import subprocess

import pytest
import testinfra

INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE", "")
PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.getcwd())
MARKER = "/root/.ogd-preflight-marker"
# Where a deployment would leave traces. Noise of the idle host itself is left
# out: systemd timer stamps and seed, apt's daily job bookkeeping.
WATCHED = "/etc /opt /var/lib /var/www /usr/local /usr/lib/systemd /srv"
NOISE = re.compile(r"^/var/lib/(systemd/(timers|random-seed|catalog)|apt/(periodic|daily_lock))")


def run_playbook(*extra_args):
    """site.yml against the scenario's inventory; returns the completed process."""
    return subprocess.run(
        ["ansible-playbook", "-i", INVENTORY, os.path.join(PROJECT, "site.yml"), *extra_args],
        capture_output=True, text=True, cwd=PROJECT,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"),
    )


def output(run):
    """Everything a run printed (Ansible 2.19 reports errors on stderr too)."""
    return run.stdout + "\n--- stderr ---\n" + run.stderr


def recap(text, host):
    """The PLAY RECAP counters of one host, e.g. {'ok': 30, 'changed': 0, ...}."""
    line = next(l for l in reversed(text.splitlines()) if l.strip().startswith(host + " ") and "ok=" in l)
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line)}


@pytest.fixture(scope="session")
def hostname():
    out = subprocess.run(["ansible-inventory", "-i", INVENTORY, "--list"], check=True, capture_output=True,
                         text=True, cwd=PROJECT).stdout
    hosts = json.loads(out)["opengram"]["hosts"]
    assert len(hosts) == 1, "the preflight scenario has exactly one host, found %s" % hosts
    return hosts[0]


@pytest.fixture(scope="session")
def host(hostname):
    return testinfra.get_host("docker://" + hostname)


class Snapshot:
    """What a deployment would change on the host, taken before and after a run."""

    def __init__(self, host):
        self.host = host

    def mark(self):
        self.host.check_output("touch %s", MARKER)
        return self.state()

    def state(self):
        return {
            "packages": self.host.check_output("dpkg-query -W -f '${Package} ${Version} ${Status}\\n' | sha256sum"),
            "accounts": self.host.check_output("getent passwd | sha256sum; getent group | sha256sum"),
            "units": self.host.check_output("systemctl list-unit-files --no-legend --no-pager | sha256sum"),
        }

    def changed_paths(self):
        """Files and directories created or modified since mark()."""
        found = self.host.run(
            "find %s -xdev \\( -newer %s -o -cnewer %s \\) -print 2>/dev/null" % (WATCHED, MARKER, MARKER))
        return [p for p in found.stdout.splitlines() if p and not NOISE.match(p)]


@pytest.fixture
def snapshot(host):
    return Snapshot(host)
