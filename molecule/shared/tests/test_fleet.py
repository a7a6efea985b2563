"""A fleet (molecule/fleet): one inventory, a domain and a proxy per host; a rolling
deployment that stops at the first failing host; playbooks/selfcheck.yml run from a client.

The rolling test needs at least three Opengram hosts and the self-check needs the scenario
to name its probing host (opengram_selfcheck_from); elsewhere these tests skip with the
reason. Each test leaves every host as the inventory declares it.
"""

import json
import os
import re
import time

import pytest
import testinfra

from conftest import ansible_json, run_playbook
from playbook import output

CONFIG = "/var/lib/opengram/opengram.config.json"
BACKUP = "/root/ogd-test-fleet-config.json"

_SELFCHECK = '{"from": opengram_selfcheck_from | default("localhost"), "service": opengram_service_name | default("opengram")}'


def selfcheck(*args):
    return run_playbook(*args, playbook=os.path.join("playbooks", "selfcheck.yml"))


def ok_lines(stdout):
    """{host: URL} of every 'OK <url>;' line the self-check printed."""
    return dict(re.findall(r"ok: \[([^\]\s]+)\] =>\s*\n\s*msg: OK (https://[^;\s]+);", stdout))


def host_of(name):
    return testinfra.get_host("docker://" + name)


def read_config(name):
    return json.loads(host_of(name).check_output("cat %s", CONFIG))


def started_at(name, service="opengram"):
    return host_of(name).check_output("systemctl show --property ActiveEnterTimestampMonotonic --value %s", service)


def wait_healthy(name, port, timeout=60):
    host = host_of(name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if host.run("curl --silent --fail --max-time 2 http://127.0.0.1:%s/api/v1/health", str(port)).rc == 0:
            return True
        time.sleep(1)
    return False


@pytest.fixture(scope="module")
def order():
    """The Opengram hosts in inventory order, the order of a rolling deployment."""
    return next(iter(ansible_json("opengram[0]", "groups['opengram']").values()))


@pytest.fixture(scope="module")
def fleet(order):
    if len(order) < 3:
        pytest.skip("a fleet needs at least 3 Opengram hosts to show a roll that stops in the middle "
                    "(this scenario has %d: molecule/fleet has 3)" % len(order))
    return order


@pytest.fixture(scope="module")
def prober(order):
    settings = ansible_json(order[0], _SELFCHECK)[order[0]]
    if settings["from"] in ("localhost", "127.0.0.1"):
        pytest.skip("opengram_selfcheck_from is not set: the controller cannot resolve the test domains "
                    "(molecule/fleet probes from its client)")
    return settings


def test_one_inventory_gives_each_host_its_own_domain_and_proxy(fleet, deployment):
    domains = [deployment[h]["domain"] for h in fleet]
    assert len(set(domains)) == len(domains), domains
    assert {deployment[h]["proxy"] for h in fleet} == {"caddy", "nginx"}
    for name in fleet:
        assert read_config(name)["server"]["publicBaseUrl"] == "https://" + deployment[name]["domain"]


def test_selfcheck_reports_one_ok_line_per_host(prober, order, deployment):
    run = selfcheck()
    assert run.returncode == 0, output(run)[-4000:]
    assert ok_lines(run.stdout) == {h: "https://" + deployment[h]["domain"] for h in order}, run.stdout[-4000:]


def test_selfcheck_explains_a_backend_that_is_down(prober, order, deployment):
    down = order[-1]
    service = prober["service"]
    host_of(down).check_output("systemctl stop %s", service)
    try:
        run = selfcheck()
        text = output(run)
        assert run.returncode != 0, text[-4000:]
        # Failures may go to stderr (display_failed_stderr): look at both.
        assert re.search(r"fatal: \[%s\]: FAILED!" % re.escape(down), text), text[-4000:]
        explained = re.search(r"https://%s \(%s, checked from [^)]+\): 1 problem\n\s*1\. Backend down: ([^\n]*)"
                              % (re.escape(deployment[down]["domain"]), re.escape(down)), text)
        assert explained, text[-4000:]
        assert "systemctl status %s" % service in explained.group(1)
        # The others are still reported healthy, one line each.
        assert ok_lines(run.stdout) == {h: "https://" + deployment[h]["domain"] for h in order if h != down}
    finally:
        host_of(down).run("systemctl start %s", service)
        assert wait_healthy(down, deployment[down]["port"]), "%s did not come back" % down


def test_rolling_deployment_stops_at_the_failing_host(fleet, deployment):
    first, middle, rest = fleet[0], fleet[1], fleet[2:]
    before = {name: read_config(name) for name in rest}
    started = {name: started_at(name) for name in rest}
    title = "roll-%d" % time.time_ns()
    roll = ["-e", "opengram_serial=1", "-e", json.dumps({"opengram_config_extra": {"branding": {"title": title}}})]
    # A real failure at run time, not at preflight: someone hand-edited the
    # middle host's opengram.config.json and left it invalid.
    broken = host_of(middle)
    broken.check_output("cp -a %s %s && printf '{\"server\": {\"port\": 3000,' > %s", CONFIG, BACKUP, CONFIG)
    try:
        run = run_playbook(*roll)
        text = output(run)
        assert run.returncode != 0, text[-4000:]
        # One batch per host: the first, then the middle one, which failed.
        assert run.stdout.count("PLAY [Deploy Opengram behind its reverse proxy]") == 2, text[-6000:]
        assert re.search(r"fatal: \[%s\]: FAILED!" % re.escape(middle), text), text[-4000:]
        assert "%s is not valid JSON" % CONFIG in text
        # The first host got the change and passed its public-URL check before
        # the middle host's batch began.
        assert read_config(first)["branding"]["title"] == title
        first_batch = run.stdout.index("PLAY [Deploy Opengram behind its reverse proxy]")
        second_batch = run.stdout.index("PLAY [Deploy Opengram behind its reverse proxy]", first_batch + 1)
        check = run.stdout.index("TASK [Check Opengram through the public URL]", first_batch)
        assert check < second_batch and "ok: [%s]" % first in run.stdout[check:second_batch]
        # Later batches were never started: same config, same process.
        deploy = run.stdout[first_batch:run.stdout.index("PLAY RECAP")]
        for name in rest:
            assert "[%s]" % name not in deploy, "%s was in the deploy play although the roll stopped" % name
            assert read_config(name) == before[name], "%s was changed although the roll stopped" % name
            assert started_at(name) == started[name], "%s was restarted although the roll stopped" % name
    finally:
        broken.run("test -f %s && cp -a %s %s && rm -f %s", BACKUP, BACKUP, CONFIG, BACKUP)
        # Repaired, the same command finishes the roll.
        repair = run_playbook(*roll)
    assert repair.returncode == 0, output(repair)[-4000:]
    assert repair.stdout.count("PLAY [Deploy Opengram behind its reverse proxy]") == len(fleet)
    for name in fleet:
        assert read_config(name)["branding"]["title"] == title
