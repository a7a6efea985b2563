"""Fixtures of the preflight scenario: one fresh host, site.yml run against it.

The host is reached with testinfra's docker backend; "unchanged" is measured
on the host itself (files newer than a marker, installed packages, users).
"""

import json
import os
import re
import subprocess
import sys

import pytest
import testinfra

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "tests"))
from playbook import INVENTORY, PROJECT, output, recap, run_playbook  # noqa: E402,F401 (test_preflight imports them from here)

MARKER = "/root/.ogd-preflight-marker"
# Where a deployment would leave traces. Noise of the idle host itself is left
# out: systemd timer stamps and seed, apt's daily job bookkeeping.
WATCHED = "/etc /opt /var/lib /var/www /usr/local /usr/lib/systemd /srv"
NOISE = re.compile(r"^/var/lib/(systemd/(timers|random-seed|catalog)|apt/(periodic|daily_lock))")


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
