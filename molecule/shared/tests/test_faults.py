"""Faults a production host meets, and how fast the site is back.

Opengram or the proxy killed with SIGKILL, the host restarted, a playbook run
killed midway, and the ACME CA unreachable while a certificate is renewed.
Each test cleans up after itself and leaves the host converged. Times are
measured by polling (no fixed sleeps) and printed / recorded.

They run where the scenario sets `ogd_test_safety_checks: true` (real, or its
stand-in twins caddy and nginx): they restart the hosts and converge them
again, slow with many hosts.
"""

import contextlib
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import PROJECT, run_playbook, skip_unless_scenario_flag
from playbook import assert_secrets_absent, output, playbook_argv, playbook_env, task_statuses

RECOVERY_LIMIT = 15.0
BLOCK_TABLE = "ogd_test_acme_block"


@pytest.fixture(scope="module", autouse=True)
def faults_enabled():
    skip_unless_scenario_flag("ogd_test_safety_checks")


def https_ok(site):
    result = site.curl("--output", "/dev/null", "--write-out", "%{http_code}", "--max-time", "2",
                       site.base + "/api/v1/health")
    return result.rc == 0 and result.stdout == "200"


def main_pid(site, unit):
    return site.host.check_output("systemctl show --property MainPID --value %s", unit)


def poll(check, timeout):
    """Seconds until check() is true, or None after `timeout` s. Polls back to back."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
    return None


def kill_and_time_recovery(site, unit, record_property):
    pid = main_pid(site, unit)
    assert pid != "0", "%s is not running" % unit
    assert https_ok(site)
    site.host.check_output("kill -KILL %s", pid)
    seconds = poll(lambda: main_pid(site, unit) not in ("0", pid) and https_ok(site), 30)
    record_property("%s_sigkill_recovery_seconds" % unit, seconds)
    print("%s on %s: SIGKILL -> HTTPS 200 again in %s s" % (unit, site.name,
                                                              "%.1f" % seconds if seconds else "> 30"))
    assert seconds is not None and seconds < RECOVERY_LIMIT, "not back within %.0f s" % RECOVERY_LIMIT
    assert site.host.service(unit).is_running


def test_opengram_killed_is_back_within_15_s(site, record_property):
    kill_and_time_recovery(site, "opengram", record_property)


def test_proxy_killed_is_back_within_15_s(site, record_property):
    kill_and_time_recovery(site, site.proxy, record_property)


def test_host_restart_brings_everything_back(site, record_property):
    started = time.monotonic()
    subprocess.run(["docker", "restart", site.name], check=True, capture_output=True, timeout=120)
    restarted = time.monotonic()

    def booted():
        state = site.host.run("systemctl is-system-running")
        return state.stdout.strip() in ("running", "degraded")

    boot = poll(booted, 120)
    assert boot is not None, "systemd did not finish booting"
    state = site.host.run("systemctl is-system-running").stdout.strip()
    failed = site.host.run("systemctl --failed --no-legend --plain").stdout
    assert state == "running", "system is %s; failed units:\n%s" % (state, failed)
    poll(lambda: https_ok(site), 60)
    seconds = time.monotonic() - restarted
    record_property("host_restart_to_https_seconds", round(seconds, 1))
    print("host %s: docker restart took %.1f s (stop + start); from there systemd booted in %.1f s and "
          "HTTPS answered 200 after %.1f s" % (site.name, restarted - started, boot, seconds))
    assert https_ok(site), "HTTPS did not come back after the restart"
    for unit in ("opengram", "opengram-firewall", site.proxy):
        assert site.host.service(unit).is_running, unit
        assert site.host.service(unit).is_enabled, unit
    # The firewall table is back: Opengram's port is refused from outside.
    outside = site.client.run("curl --silent --max-time 5 --output /dev/null http://%s:%s/api/v1/health",
                              site.domain, str(site.port))
    assert outside.rc in (7, 28), "port %s answered from the client after the restart" % site.port


def running_env(site):
    pid = main_pid(site, "opengram")
    return dict(line.split("=", 1) for line in
                site.host.check_output("tr '\\0' '\\n' < /proc/%s/environ", pid).splitlines() if "=" in line)


def run_killed_at(site, extra_vars, stop_at):
    """site.yml with `extra_vars`, killed (SIGKILL, the whole process group) as
    soon as it prints `stop_at`, the header of the task it was about to run."""
    process = subprocess.Popen(
        playbook_argv("--limit", site.name, "-e", json.dumps(extra_vars)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=PROJECT, start_new_session=True,
        env=dict(playbook_env(), PYTHONUNBUFFERED="1"))
    seen = []
    try:
        for line in process.stdout:
            seen.append(line)
            if line.startswith(stop_at):
                os.killpg(process.pid, signal.SIGKILL)
                break
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    text = "".join(seen)
    assert stop_at in text, "the run ended before reaching %r:\n%s" % (stop_at, text[-3000:])
    assert "PLAY RECAP" not in text
    assert process.returncode == -signal.SIGKILL


# Per proxy: the variable that adds raw directives, one that adds a response
# header, the live file, and the task right after the file is written (the
# "reload owed" check of roles/common's stage entry point).
PROXY_MARK = {
    "caddy": ("caddy_site_extra_config", "header X-Ogd-Interrupted yes", "/etc/caddy/opengram-deploy/site.caddy",
              "TASK [opengram_deploy.opengram.common : Reload if the service has not loaded the live configuration (left by an interrupted run): Caddy]"),
    "nginx": ("nginx_extra_config", "add_header X-Ogd-Interrupted yes always;", "/etc/nginx/sites-available/opengram",
              "TASK [opengram_deploy.opengram.common : Reload if the service has not loaded the live configuration (left by an interrupted run): nginx]"),
}


def serves_mark(site):
    head = site.curl("--head", site.base + "/api/v1/health")
    assert head.rc == 0, head.stderr
    return "x-ogd-interrupted: yes" in head.stdout.lower()


def test_interrupted_runs_then_the_next_run_restarts_opengram_and_reloads_the_proxy(site, record_property):
    """Two interrupted runs, each followed by the run that finishes the job, and ONE
    run back to the inventory at the end (issue 12: the two checks share it).

    1. Killed right after opengram.env was rewritten, before its restart handler:
       the next run restarts Opengram with what the file says.
    2. Killed right after the new proxy configuration went live on disk, before
       the reload: the next run finds the file already as it wants it, and still
       reloads the proxy.
    3. Back to the inventory, at -vvv with --diff: this run rewrites opengram.env,
       the one place a diff of the file would show the secret."""
    variable, value, live, stop_at = PROXY_MARK[site.proxy]
    rate = {"opengram_write_rate_limit_max": site.rate_max + 7}
    both = dict(rate, **{variable: value})
    assert not serves_mark(site)
    try:
        # 1. Half done: the new environment file is written, the old process still runs.
        run_killed_at(site, rate, "TASK [opengram_deploy.opengram.opengram : Template the systemd unit]")
        assert site.host.file("/etc/opengram/opengram.env").contains(
            "OPENGRAM_WRITE_RATE_LIMIT_MAX=%d$" % rate["opengram_write_rate_limit_max"])
        assert running_env(site)["OPENGRAM_WRITE_RATE_LIMIT_MAX"] == str(site.rate_max)
        started = time.monotonic()
        again = run_playbook("--limit", site.name, "-e", json.dumps(rate))
        record_property("rerun_after_interrupt_seconds", round(time.monotonic() - started, 1))
        assert again.returncode == 0, output(again)[-3000:]
        assert https_ok(site)
        # Converged means running with what the files say, not just files in place.
        assert running_env(site)["OPENGRAM_WRITE_RATE_LIMIT_MAX"] == str(rate["opengram_write_rate_limit_max"])

        # 2. The proxy's turn; the rate limit stays as step 1 left it.
        run_killed_at(site, both, stop_at)
        assert site.host.file(live).contains(value.split()[0] + " X-Ogd-Interrupted")
        assert not serves_mark(site), "the proxy already serves the new configuration: nothing was interrupted"
        again = run_playbook("--limit", site.name, "-e", json.dumps(both))
        assert again.returncode == 0, output(again)[-3000:]
        assert serves_mark(site), "the next run left the proxy on its old configuration"
        assert running_env(site)["OPENGRAM_WRITE_RATE_LIMIT_MAX"] == str(rate["opengram_write_rate_limit_max"])
    finally:
        # 3. Back to the inventory, whatever happened above.
        restored = run_playbook("--limit", site.name, "-vvv", "--diff")
    assert restored.returncode == 0, output(restored)[-3000:]
    assert running_env(site)["OPENGRAM_WRITE_RATE_LIMIT_MAX"] == str(site.rate_max)
    assert https_ok(site)
    assert not serves_mark(site)
    assert "changed" in task_statuses(restored.stdout, "opengram_deploy.opengram.opengram : Template opengram.env"), \
        "opengram.env did not change: the --diff case was not exercised"
    assert_secrets_absent(site, restored, "a --diff of opengram.env at -vvv")
    assert site.host.file("/etc/opengram/opengram.env").contains("OPENGRAM_WRITE_RATE_LIMIT_MAX=%d$" % site.rate_max)


# ---- the ACME CA unreachable -----------------------------------------------------------

@contextlib.contextmanager
def pebble_blocked(site):
    """Drops everything the app host sends to the ACME CA, in an nftables table
    of its own (deleted afterwards, whatever happens)."""
    host = site.host
    ip = host.check_output("getent ahostsv4 pebble | awk 'NR == 1 {print $1}'")
    assert ip, "cannot resolve pebble on %s" % site.name
    try:
        added = host.run(
            "nft add table inet {t} && nft add chain inet {t} output "
            "'{{ type filter hook output priority -20; policy accept; }}' && "
            "nft add rule inet {t} output ip daddr {ip} drop".format(t=BLOCK_TABLE, ip=ip))
        assert added.rc == 0, added.stderr
        reach = host.run("curl --silent --max-time 3 --insecure --output /dev/null https://pebble:14000/dir")
        assert reach.rc == 28, "pebble still reachable (curl exit %s)" % reach.rc
        yield ip
    finally:
        host.run("nft delete table inet %s", BLOCK_TABLE)
        assert host.run("nft list table inet %s", BLOCK_TABLE).rc != 0, "the blocking table is still there"


def test_acme_unreachable_during_renewal_keeps_nginx_serving(nginx_site, record_property):
    site = nginx_site
    before = site.served_certificate()
    pid = main_pid(site, "nginx")
    with pebble_blocked(site):
        started = time.monotonic()
        renew = site.host.run("certbot renew --force-renewal --no-random-sleep-on-renew")
        record_property("renewal_failure_seconds", round(time.monotonic() - started, 1))
        print("certbot renew with the CA unreachable failed after %.0f s" % (time.monotonic() - started))
        assert renew.rc != 0, renew.stdout
        assert https_ok(site)
        assert site.served_certificate() == before, "the served certificate changed"
        assert main_pid(site, "nginx") == pid, "nginx was restarted"
    # The CA back: the certificate renews (and is served) as usual.
    assert site.host.run("certbot certificates --cert-name %s", site.domain).rc == 0
    assert https_ok(site)


def test_acme_unreachable_caddy_reload_and_restart_serve_the_cached_certificate(caddy_site):
    site = caddy_site
    before = site.served_certificate()
    with pebble_blocked(site):
        for action in ("reload", "restart"):
            site.host.check_output("systemctl %s caddy", action)
            seconds = poll(lambda: https_ok(site), 30)
            print("caddy %s with the CA unreachable: HTTPS 200 after %s s" % (
                action, "%.1f" % seconds if seconds is not None else "> 30"))
            assert seconds is not None, "no HTTPS after %s with the CA unreachable" % action
            assert site.served_certificate() == before, "not the cached certificate after %s" % action
    assert https_ok(site)
