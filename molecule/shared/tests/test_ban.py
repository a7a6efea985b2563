"""Brute force stopped at the firewall (issue 28 item 2), on both proxies.

fail2ban's jail opengram-login reads the failed logins the proxy logs (nginx:
/var/log/nginx/opengram-login-failures.log; Caddy: the site's access log in
the journal) and bans the client's address at the firewall (nftables, ports
80 and 443) for fail2ban_login_ban_time seconds. The scenarios set small
values (.config/molecule/config.yml). Both clients are containers on the
scenario's network, so the addresses the proxy logs are theirs. Each check
starts from a restarted jail (no failures counted, nothing banned) and ends
with every ban lifted (fail2ban-client unban --all)."""

import re
import time

import pytest

from conftest import ansible_json, basic_auth, basic_header, client_address, skip_unless_scenario_flag, wait_for

JAIL = "opengram-login"
SETTINGS = ('{"retries": fail2ban_login_max_retries | default(5) | int,'
            ' "ban_time": fail2ban_login_ban_time | default(3600) | int}')


def status(site):
    """(total failures counted since the jail started, banned addresses)."""
    text = site.host.check_output("fail2ban-client status %s" % JAIL)
    total = int(re.search(r"Total failed:\s*(\d+)", text).group(1))
    banned = re.search(r"Banned IP list:\s*(.*)", text).group(1).split()
    return total, banned


def login(site, client, password=None, path="/"):
    """HTTP status of one request with basic auth (the right password unless given), or
    'refused' when no connection was made (refused or timed out at the firewall)."""
    auth = basic_auth(site) if password is None else basic_header(site.access_user, password)
    result = site.curl("--connect-timeout", "3", "--max-time", "6", "--output", "/dev/null",
                       "--write-out", "%{http_code}", *auth, site.base + path, client=client)
    if result.rc in (7, 28) and result.stdout.strip() in ("", "000"):
        return "refused"
    assert result.rc == 0, "curl exit %d: %s" % (result.rc, result.stderr)
    return int(result.stdout)


def reset(site):
    # A restarted jail counts from zero; --unban lifts its bans. It keeps
    # reading its log where it stopped (the file position, the journal's),
    # but Debian 12's fail2ban 1.0.2 reads nginx's file again from its last
    # line (a failure of an earlier check counted once more): the file is
    # emptied first, so each check starts from no failure at all.
    if site.proxy == "nginx":
        site.host.check_output("truncate --size 0 /var/log/nginx/opengram-login-failures.log")
    site.host.check_output("fail2ban-client reload --restart --unban %s" % JAIL)
    wait_for(lambda: site.host.run("fail2ban-client status %s" % JAIL).rc == 0, 30, "the jail is back", every=0.5)
    assert status(site) == (0, [])


@pytest.fixture
def ban(site):
    skip_unless_scenario_flag("ogd_test_safety_checks")
    settings = ansible_json(site.name, SETTINGS)[site.name]
    reset(site)
    yield settings
    site.host.run("fail2ban-client unban --all")
    reset(site)


def test_a_few_typos_never_ban_the_right_password(site, ban):
    typos = ban["retries"] - 1
    assert [login(site, site.client, "typo-%d-not-it" % n) for n in range(typos)] == [401] * typos
    assert login(site, site.client) == 200
    # The typos were counted (the jail read them), and that is all.
    wait_for(lambda: status(site)[0] >= typos, 15, "%d failures counted" % typos, every=0.5)
    assert status(site) == (typos, [])
    assert login(site, site.client) == 200


def test_health_and_the_apis_own_401_never_count(site, ban):
    for _ in range(ban["retries"] + 2):
        # Monitoring: open, whatever credentials come with it.
        assert login(site, site.other_client, "wrong-wrong-wrong", "/api/v1/health") == 200
        assert site.curl("--output", "/dev/null", "--write-out", "%{http_code}", site.base + "/api/v1/health",
                         client=site.other_client).stdout == "200"
        # A wrong instance secret: Opengram's own 401, not the password gate's.
        assert site.curl("--output", "/dev/null", "--write-out", "%{http_code}", "-H",
                         "Authorization: Bearer og_not-the-secret", site.base + "/api/v1/chats",
                         client=site.other_client).stdout == "401"
    # One failed login after them: once the jail has counted it, it has read
    # the lines before it, and counted none of them.
    assert site.curl("--output", "/dev/null", "--write-out", "%{http_code}", *basic_header(site.access_user, "wrong-wrong-wrong"),
                     site.base + "/", client=site.other_client).stdout == "401"
    wait_for(lambda: status(site)[0] >= 1, 15, "the failed login counted", every=0.5)
    assert status(site) == (1, [])
    assert login(site, site.other_client) == 200


def test_repeated_failed_logins_ban_the_client_until_the_ban_ends(site, ban):
    banned, other = client_address(site.client), client_address(site.other_client)
    answers = [login(site, site.client, "guess-%d-guess" % n) for n in range(ban["retries"])]
    assert set(answers) <= {401, 429, "refused"} and answers[0] == 401, answers
    wait_for(lambda: banned in status(site)[1], 20, "%s banned" % banned, every=0.5)
    began = time.monotonic()
    print("%d failed logins from %s: %s; banned" % (ban["retries"], banned, answers))
    # Refused at the firewall, the right password too; the other client logs in.
    assert login(site, site.client) == "refused"
    assert login(site, site.other_client) == 200
    assert other not in status(site)[1]
    # Our own nftables table reloaded: fail2ban's table (and the ban) stays.
    site.host.check_output("systemctl reload opengram-firewall")
    assert "f2b-table" in site.host.check_output("nft list tables")
    assert "opengram" in site.host.check_output("nft list tables")
    assert login(site, site.client) == "refused"
    # The ban ends after its time, not before.
    wait_for(lambda: login(site, site.client) == 200, ban["ban_time"] + 30, "the ban of %s ends" % banned, every=0.5)
    ended = time.monotonic() - began
    print("ban ended after %.1f s (ban time %d s)" % (ended, ban["ban_time"]))
    assert ended >= ban["ban_time"] - 3, ended
    assert banned not in status(site)[1]
