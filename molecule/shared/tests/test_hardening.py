"""Safe by default on a converged host: a proxy configuration the proxy rejects
never goes live, the instance secret never reaches the playbook output (at
-vvv, here on a no-change run; with --diff of a changed opengram.env in
test_faults.py, whose runs change it anyway), files and the service are
locked down, and TLS is 1.2+ with HSTS.

Every test leaves the host converged as the scenario's inventory says.
"""

import json
import re
import shlex

from conftest import run_playbook, skip_unless_scenario_flag
from playbook import assert_secrets_absent, output

# What each proxy's role validates its configuration with, where the live
# configuration is, and the variable that inserts raw directives into it.
PROXIES = {
    "caddy": {"extra_var": "caddy_site_extra_config", "live": "/etc/caddy/opengram-deploy/site.caddy",
              "refusal": ["Caddy rejected the new configuration", "this_is_bogus", "are unchanged"]},
    "nginx": {"extra_var": "nginx_extra_config", "live": "/etc/nginx/sites-available/opengram",
              "refusal": ["nginx rejected the new configuration", "the live", "are unchanged"]},
}
ENV_FILE = "/etc/opengram/opengram.env"
CONFIG_FILE = "/var/lib/opengram/opengram.config.json"
PEBBLE_ROOT = "/opt/ogd-probes/pebble-root.pem"


def main_pid(site, unit):
    return site.host.check_output("systemctl show --property MainPID --value %s", unit)


def sha256(site, path):
    return site.host.check_output("sha256sum %s", path).split()[0]


def https_status(site):
    result = site.curl("--output", "/dev/null", "--write-out", "%{http_code}", site.base + "/api/v1/health")
    return result.stdout if result.rc == 0 else "curl exit %d" % result.rc


# ---- a bad proxy configuration never goes live --------------------------------------

def test_a_configuration_the_proxy_rejects_never_goes_live(site):
    skip_unless_scenario_flag("ogd_test_safety_checks")
    proxy = PROXIES[site.proxy]
    before = sha256(site, proxy["live"])
    pid = main_pid(site, site.proxy)
    run = run_playbook("--limit", site.name, "-e", json.dumps({proxy["extra_var"]: "this_is_bogus"}))
    text = output(run)
    assert run.returncode != 0, "a configuration with 'this_is_bogus' was accepted:\n" + text[-3000:]
    for expected in proxy["refusal"]:
        assert expected in text, "the validator's message is missing %r:\n%s" % (expected, text[-3000:])
    assert sha256(site, proxy["live"]) == before, "the live configuration changed"
    assert main_pid(site, site.proxy) == pid, "the proxy was restarted"
    assert https_status(site) == "200"
    # The inventory as it is converges again. Nothing changed on the host, so
    # this is a no-change run: at -vvv it must not print the secret either
    # (the other half of that check, a --diff of opengram.env, is in
    # test_faults.py: test_interrupted_runs_then_the_next_run_restarts_opengram_and_reloads_the_proxy).
    again = run_playbook("--limit", site.name, "-vvv")
    assert again.returncode == 0, output(again)[-3000:]
    assert https_status(site) == "200"
    assert site.host.file(ENV_FILE).contains(site.token), "the secret is not where it should be"
    assert_secrets_absent(site, again, "a no-change run at -vvv")


# ---- secrets -----------------------------------------------------------------------

def test_env_and_config_files_are_private(site):
    env = site.host.file(ENV_FILE)
    assert (env.mode, env.user, env.group) == (0o640, "root", "opengram")
    config = site.host.file(CONFIG_FILE)
    assert (config.mode, config.user, config.group) == (0o640, "opengram", "opengram")
    # The service user reads its environment file through its group, others cannot.
    assert site.host.file("/etc/opengram").mode & 0o007 == 0


# ---- the service ---------------------------------------------------------------------

def test_service_exposure_score(site, record_property):
    report = site.host.check_output("systemd-analyze security --no-pager opengram.service")
    score = float(re.search(r"Overall exposure level for opengram\.service: ([0-9.]+)", report).group(1))
    record_property("systemd_exposure", score)
    print("systemd-analyze security opengram.service on %s: %.1f" % (site.name, score))
    assert score < 5.0, report
    # Node.js's JIT needs W+X memory: hardened as far as that allows, and running.
    assert site.host.service("opengram").is_running


# ---- TLS -------------------------------------------------------------------------------

def s_client(site, *options):
    return site.client.run(
        "echo | openssl s_client -connect %s:443 -servername %s -CAfile %s -verify_return_error "
        % (shlex.quote(site.domain), shlex.quote(site.domain), PEBBLE_ROOT)
        + " ".join(shlex.quote(o) for o in options) + " 2>&1")


def test_tls_1_1_is_refused_by_the_server(site):
    # SECLEVEL=0 lets this client offer TLS 1.1 at all: the refusal must be the server's.
    result = s_client(site, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert result.rc != 0, result.stdout
    assert re.search(r"alert protocol version|unsupported protocol", result.stdout), result.stdout
    assert "no protocols available" not in result.stdout, "the client refused, not the server"


def test_tls_1_2_and_1_3_are_accepted(site):
    for option, protocol in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        result = s_client(site, "-brief", option)
        assert result.rc == 0, result.stdout
        assert "Protocol version: %s" % protocol in result.stdout, result.stdout


def test_hsts_header_is_sent(site):
    head = site.curl("--head", site.base + "/api/v1/health")
    assert head.rc == 0, head.stderr
    hsts = [l for l in head.stdout.splitlines() if l.lower().startswith("strict-transport-security:")]
    assert hsts, head.stdout
    max_age = int(re.search(r"max-age=(\d+)", hsts[0]).group(1))
    assert max_age >= 15768000, hsts[0]
