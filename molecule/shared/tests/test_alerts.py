"""Failures reach a person (issue 28), where the scenario sets `ogd_test_alerts`
(molecule/nginx: opengram_alert_command is /usr/local/bin/ogd-test-alert, from
molecule/shared/prepare.yml, which appends one JSON line per call to LOG).

Each check breaks one thing the way it breaks in production, sees the hook fire
exactly once with a message naming the host and what failed, and puts the host
back: the scheduled backup (its directory is a file), a certbot renewal
(Debian's certbot.service with the ACME CA refusing connections), Opengram
crash-looping (an env file it cannot start with); then a run with a ping URL
instead (never printed) and a run without any hook (everything removed), and
the inventory's run again. Conditions are polled against deadlines.
"""

import contextlib
import json
import secrets
import time

import pytest

from conftest import skip_unless_scenario_flag, wait_for
from playbook import output, run_playbook, run_with_vars

LOG = "/var/log/ogd-test-alerts.jsonl"
BACKUPS = "/var/backups/opengram"
ENV_FILE = "/etc/opengram/opengram.env"
CLI_INI = "/etc/letsencrypt/cli.ini"
BLOCK_TABLE = "ogd_test_alert_block"
DROPIN = "/etc/systemd/system/certbot.service.d/opengram-alert.conf"
HOOK_FILES = {"/usr/local/sbin/opengram-alert": 0o700, "/etc/opengram/alert.env": 0o600,
              "/etc/systemd/system/opengram-alert@.service": 0o644, DROPIN: 0o644}
WATCHED = ("opengram.service", "opengram-backup.service", "certbot.service")


@pytest.fixture(scope="module", autouse=True)
def alerts_enabled():
    skip_unless_scenario_flag("ogd_test_alerts")


def alerts(host, unit):
    records = [json.loads(line) for line in host.run("cat %s", LOG).stdout.splitlines() if line.strip()]
    return [r for r in records if r["env"].get("OPENGRAM_ALERT_UNIT") == unit]


def show(host, unit, prop):
    return host.check_output("systemctl show -P %s %s", prop, unit)


@contextlib.contextmanager
def restored(host, path, copy):
    """`path` as it is now, put back (with its owner and mode) when the block ends."""
    host.check_output("cp -p %s %s", path, copy)
    try:
        yield
    finally:
        host.run("cp -p %s %s && rm -f %s", copy, path, copy)


def the_one_alert(host, unit, before):
    """Waits for the alert about `unit` and for its alert unit to finish; exactly one new."""
    wait_for(lambda: len(alerts(host, unit)) > before, 60, "an alert about %s" % unit)
    wait_for(lambda: show(host, "opengram-alert@fail:%s.service" % unit, "ActiveState") in ("inactive", "failed"),
             60, "the alert unit of %s done" % unit)
    new = alerts(host, unit)[before:]
    assert len(new) == 1, "%d alerts about %s, not one: %s" % (len(new), unit, new)
    return new[0]


def assert_names_host_and_failure(record, site, unit, words):
    assert record["args"][:2] == [site.name, unit], record["args"]
    assert record["env"]["OPENGRAM_ALERT_HOST"] == site.name
    assert record["env"]["OPENGRAM_ALERT_DOMAIN"] == site.domain
    subject = record["args"][2]
    assert subject.startswith("%s: %s failed" % (site.name, unit)) and words in subject, subject
    assert record["stdin"].startswith(subject) and "journalctl -u %s" % unit in record["stdin"]
    print("alert about %s: %s" % (unit, subject))


def test_the_hook_is_installed_root_only_and_watches_each_unit(nginx_site):
    host = nginx_site.host
    for path, mode in HOOK_FILES.items():
        found = host.file(path)
        assert (found.user, found.group, found.mode) == ("root", "root", mode), path
    for unit in WATCHED:
        assert show(host, unit, "OnFailure") == "opengram-alert@fail:%s.service" % unit, unit
    assert show(host, "opengram-backup.service", "OnSuccess") == "", "a success alert without a ping URL"
    assert show(host, "opengram.service", "StartLimitBurst") == "5"
    assert show(host, "opengram.service", "StartLimitIntervalUSec") == "1min"


def test_a_failing_backup_alerts_once(nginx_site):
    host, unit = nginx_site.host, "opengram-backup.service"
    before = len(alerts(host, unit))
    # The backup directory is not a directory (a mount gone wrong): the program cannot write there.
    host.check_output("mkdir -p -m 0700 %s && mv %s %s.ogd-test && touch %s", BACKUPS, BACKUPS, BACKUPS, BACKUPS)
    try:
        assert host.run("systemctl start %s", unit).rc != 0, "the backup did not fail"
        assert show(host, unit, "Result") == "exit-code"
        record = the_one_alert(host, unit, before)
    finally:
        host.run("rm -f %s && mv %s.ogd-test %s", BACKUPS, BACKUPS, BACKUPS)
        host.run("systemctl reset-failed %s", unit)
    assert_names_host_and_failure(record, nginx_site, unit, "exited with status")
    assert record["env"]["OPENGRAM_ALERT_RESULT"] == "exit-code"
    assert BACKUPS in record["stdin"], "the message lacks the backup's own error"
    # Repaired: the next backup succeeds, and a success calls no command.
    host.check_output("systemctl start %s", unit)
    assert show(host, unit, "Result") == "success"
    assert len(alerts(host, unit)) == before + 1


def test_a_failing_certbot_renewal_alerts_once(nginx_site):
    site, unit = nginx_site, "certbot.service"
    host = site.host
    served = site.served_certificate()
    before = len(alerts(host, unit))
    ip = host.check_output("getent ahostsv4 pebble | awk 'NR == 1 {print $1}'")
    assert ip
    with restored(host, CLI_INI, "/root/ogd-test-cli.ini"):
        try:
            # The certificate is due (as it is 30 days before expiry: forced here through certbot's own
            # configuration file, which the timer's `certbot -q renew` reads) and the ACME CA refuses
            # connections: the renewal that certbot.timer starts fails.
            host.check_output("echo 'force-renewal = True' >> %s", CLI_INI)
            host.check_output(
                "nft add table inet {t} && nft add chain inet {t} output "
                "'{{ type filter hook output priority -20; policy accept; }}' && "
                "nft add rule inet {t} output ip daddr {ip} meta l4proto tcp reject with tcp reset".format(t=BLOCK_TABLE, ip=ip))
            started = time.monotonic()
            assert host.run("systemctl start %s", unit).rc != 0, "the renewal did not fail"
            print("certbot.service failed after %.1f s" % (time.monotonic() - started))
            record = the_one_alert(host, unit, before)
        finally:
            host.run("nft delete table inet %s", BLOCK_TABLE)
            host.run("systemctl reset-failed %s", unit)
    assert_names_host_and_failure(record, site, unit, "exited with status")
    assert host.run("nft list table inet %s", BLOCK_TABLE).rc != 0
    assert "force-renewal" not in host.file(CLI_INI).content_string
    assert site.served_certificate() == served, "the served certificate changed"


def test_a_crash_loop_ends_failed_and_alerts_once(nginx_site):
    site, unit = nginx_site, "opengram.service"
    host = site.host
    before = len(alerts(host, unit))
    try:
        with restored(host, ENV_FILE, "/root/ogd-test-opengram.env"):
            # A setting Node.js refuses at start: every start fails at once, as with a broken release.
            host.check_output("echo NODE_OPTIONS=--ogd-test-no-such-option >> %s", ENV_FILE)
            host.check_output("systemctl restart %s", unit)
            started = time.monotonic()
            wait_for(lambda: show(host, unit, "ActiveState") == "failed", 120, "%s failed for good" % unit)
            print("crash loop: %s failed for good after %.1f s, %s restarts" % (
                unit, time.monotonic() - started, show(host, unit, "NRestarts")))
            # systemd 257 keeps the last run's result (exit-code); the start limit ended the restarts.
            assert int(show(host, unit, "NRestarts")) >= 4
            record = the_one_alert(host, unit, before)
    finally:
        host.run("systemctl reset-failed %s", unit)
        host.run("systemctl start %s", unit)
    assert_names_host_and_failure(record, site, unit, "crash loop")
    assert record["env"]["OPENGRAM_ALERT_RESULT"] in ("exit-code", "start-limit-hit")
    wait_for(lambda: site.curl("--output", "/dev/null", "--write-out", "%{http_code}", "--max-time", "2",
                               site.base + "/api/v1/health").stdout == "200", 60, "Opengram healthy again")
    assert "ogd-test" not in host.file(ENV_FILE).content_string


def test_a_ping_url_is_never_printed_and_no_hook_removes_everything(nginx_site):
    site = nginx_site
    host = site.host
    token = secrets.token_hex(16)
    url = "https://hc-ping.invalid/" + token
    try:
        run = run_with_vars({"opengram_alert_command": "", "opengram_alert_url": url}, "--limit", site.name,
                            "--diff", "-v")
        assert run.returncode == 0, output(run, 4000)
        assert token not in output(run), "the ping URL was printed"
        assert host.file("/etc/opengram/alert.env").contains(token)
        assert show(host, "opengram-backup.service", "OnSuccess") == "opengram-alert@ok:opengram-backup.service.service"

        run = run_with_vars({"opengram_alert_command": "", "opengram_alert_url": ""}, "--limit", site.name)
        assert run.returncode == 0, output(run, 4000)
        for path in HOOK_FILES:
            assert not host.file(path).exists, "%s left without a hook" % path
        assert not host.file("/etc/systemd/system/certbot.service.d").exists
        for unit in WATCHED:
            assert show(host, unit, "OnFailure") == "", unit
        assert show(host, "opengram-backup.service", "OnSuccess") == ""
    finally:
        run = run_playbook("--limit", site.name)
        assert run.returncode == 0, output(run, 4000)
    for unit in WATCHED:
        assert show(host, unit, "OnFailure") == "opengram-alert@fail:%s.service" % unit, unit
