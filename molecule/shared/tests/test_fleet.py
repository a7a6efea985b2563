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
from playbook import output, task_statuses

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


# ---- opengram_tls_mode internal (issue 30 item 7) ----------------------------------------------
# One Caddy host of the fleet is switched to Caddy's local CA for this test
# (--tags proxy,selfcheck: the proxy and the run's own check), then back to
# ACME (Pebble), as the inventory declares it.

CADDY_LOCAL_ROOT = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"
# A CA certificate on every Caddy host of the scenarios that is not Caddy's
# local root: Pebble's listener CA (opengram_acme_ca_bundle_src).
NOT_THE_LOCAL_ROOT = "/etc/caddy/acme-ca-root.pem"
SELFCHECK_TASK = "opengram_deploy.opengram.opengram_selfcheck : Wait for HTTPS on the public URL to answer with a healthy Opengram"


def flat(text):
    """A run's output with YAML's line folding undone (long messages wrap)."""
    return " ".join(text.split())


def served_issuer(client, domain):
    """The issuer of the certificate `domain` serves, seen (unverified) from `client`."""
    return client.check_output(
        "echo | openssl s_client -connect %s:443 -servername %s 2>/dev/null | openssl x509 -noout -issuer",
        domain, domain)


def explained(text, host, domain):
    """The probe's explanation of a failing host: its problem lines, joined."""
    assert re.search(r"fatal: \[%s\]: FAILED!" % re.escape(host), text), text[-4000:]
    found = re.search(r"https://%s \(%s, checked from [^)]+\): \d+ problems?\n((?:\s*\d+\. [^\n]*\n?)+)"
                      % (re.escape(domain), re.escape(host)), text)
    assert found, text[-4000:]
    return flat(found.group(1))


def test_internal_mode_selfchecks_verify_against_caddys_local_root(prober, order, deployment):
    caddy_hosts = [h for h in order if deployment[h]["proxy"] == "caddy" and not deployment[h]["switch_test"]]
    if not caddy_hosts:
        pytest.skip("no Caddy host to switch to opengram_tls_mode internal")
    name = caddy_hosts[0]
    domain = deployment[name]["domain"]
    host, client = host_of(name), host_of(prober["from"])
    internal = json.dumps({"opengram_tls_mode": "internal"})
    # The scenarios turn the run's own certificate check off (their hosts do
    # not trust Pebble): here it is on, as every inventory but those has it.
    verified = {"opengram_tls_mode": "internal", "opengram_selfcheck_validate_certs": True}
    try:
        # The run's own check passes in internal mode, certificate validation on ...
        switch = run_playbook("--limit", name, "--tags", "proxy,selfcheck", "-e", json.dumps(verified))
        assert switch.returncode == 0, output(switch)[-4000:]
        assert task_statuses(switch.stdout, SELFCHECK_TASK) == ["ok"], switch.stdout[-4000:]
        assert "Caddy Local Authority" in served_issuer(client, domain)
        # ... which it can only have passed against Caddy's local root: nothing
        # else on the host trusts that certificate.
        assert host.file(CADDY_LOCAL_ROOT).is_file
        untrusted = host.run("curl --silent --output /dev/null --resolve %s:443:127.0.0.1 https://%s/api/v1/health",
                             domain, domain)
        assert untrusted.rc == 60, (untrusted.rc, untrusted.stderr)

        # playbooks/selfcheck.yml from the client: the root read from the host,
        # a 12-hour certificate judged by its own lifetime (14 days would fail it).
        probe = selfcheck("--limit", name, "-e", internal)
        assert probe.returncode == 0, output(probe)[-4000:]
        assert ok_lines(probe.stdout) == {name: "https://" + domain}, probe.stdout[-4000:]
        assert "certificate from Caddy" in flat(probe.stdout)

        # It fails, in the words of the mode, when the certificate has too little
        # life left: here by demanding its whole lifetime ...
        short = selfcheck("--limit", name, "-e", json.dumps({"opengram_tls_mode": "internal",
                                                             "opengram_selfcheck_cert_min_fraction": 1}))
        assert short.returncode != 0, output(short)[-4000:]
        problems = explained(output(short), name, domain)
        assert "Certificate expires soon: %s" % domain in problems, problems
        assert "local CA (opengram_tls_mode: internal; its root is %s on %s)" % (CADDY_LOCAL_ROOT, name) in problems
        assert "ACME" not in problems and "port 80" not in problems, problems

        # ... and when the certificate is not from the root it is checked against.
        wrong = json.dumps({"opengram_tls_mode": "internal", "opengram_selfcheck_local_ca_root": NOT_THE_LOCAL_ROOT})
        foreign = selfcheck("--limit", name, "-e", wrong)
        assert foreign.returncode != 0, output(foreign)[-4000:]
        problems = explained(output(foreign), name, domain)
        assert "local CA: %s serves a certificate issued by Caddy Local Authority" % domain in problems, problems
        assert "its root is %s on %s" % (NOT_THE_LOCAL_ROOT, name) in problems, problems
        assert "ACME" not in problems and "opengram_acme_directory" not in problems, problems

        # The run's own check, against the wrong root too: it fails at once
        # (a short timeout) and says why in the words of the mode.
        wrong_run = run_playbook("--limit", name, "--tags", "selfcheck", "-e", json.dumps(
            dict(verified, opengram_selfcheck_local_ca_root=NOT_THE_LOCAL_ROOT, opengram_selfcheck_timeout=2)))
        text = flat(output(wrong_run))
        assert wrong_run.returncode != 0, text[-4000:]
        assert "(opengram_tls_mode internal: the certificate is checked against Caddy" in text, text[-4000:]
        assert "does not chain to the root %s" % NOT_THE_LOCAL_ROOT in text, text[-4000:]
        assert "for ACME errors" not in text and "reachable from the ACME CA" not in text, text[-4000:]
    finally:
        # Back to ACME, as the inventory declares it: Pebble's certificate again.
        back = run_playbook("--limit", name, "--tags", "proxy,selfcheck")
    assert back.returncode == 0, output(back)[-4000:]
    assert "Caddy Local Authority" not in served_issuer(client, domain)
    assert client.run("curl --silent --output /dev/null --cacert /opt/ogd-probes/pebble-root.pem https://%s/api/v1/health",
                      domain).rc == 0
