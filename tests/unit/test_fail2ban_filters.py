"""The login ban's fail2ban filters (roles/fail2ban/templates/etc/fail2ban/filter.d),
matched on the controller with Python's re as fail2ban would, <ADDR> standing for an
address. The Caddy lines are real: Debian's Caddy 2.6.2 and upstream 2.11.7 (captured
7 Dec with the site's log filter, tests/fixtures/caddy-logs): per version, one 401
without credentials, one wrong password, one right password (and a health request)."""

import configparser
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILTERS = ROOT / "roles/fail2ban/templates/etc/fail2ban/filter.d"
CADDY_LINES = (ROOT / "tests/fixtures/caddy-logs/access-2.6.2-and-2.11.7.jsonl").read_text().splitlines()
ADDR = r"(?P<addr>[0-9A-Fa-f.:]+)"


def failregexes(name):
    text = "\n".join(line for line in (FILTERS / name).read_text().splitlines() if not line.startswith("{{"))
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    return [re.compile(line.strip().replace("%%", "%").replace("<ADDR>", ADDR))
            for line in parser["Definition"]["failregex"].splitlines() if line.strip()]


def matched(name, line):
    found = [m.group("addr") for m in (r.search(line) for r in failregexes(name)) if m]
    assert len(found) <= 1, "two failregexes match one line: %s" % line
    return found[0] if found else None


def test_caddy_counts_exactly_the_wrong_passwords_of_both_versions():
    hits = [(json.loads(line)["request"].get("client_ip") is not None, matched("opengram-login-caddy.conf.j2", line))
            for line in CADDY_LINES]
    # 2.6.2 (no client_ip) and 2.11.7 (client_ip): one wrong password each, nothing else.
    assert [hit for hit in hits if hit[1]] == [(False, "127.0.0.1"), (True, "127.0.0.1")], hits


def test_caddy_uses_the_client_ip_where_caddy_logs_one():
    line = next(line for line in CADDY_LINES if '"client_ip"' in line and '"Authorization"' in line
                and '"status":401' in line)
    line = line.replace('"client_ip":"127.0.0.1"', '"client_ip":"198.51.100.9"')
    assert matched("opengram-login-caddy.conf.j2", line) == "198.51.100.9"


def test_caddy_values_a_client_sends_cannot_name_another_address():
    # A header value holding the fields: JSON escapes its quotes, so it is not a field.
    line = next(line for line in CADDY_LINES if '"client_ip"' not in line and '"status":200' in line
                and '"Authorization"' in line)
    forged = json.dumps('x","remote_ip":"203.0.113.5","status":401,"Www-Authenticate":["Basic x"]')
    line = line.replace('"User-Agent":["curl/8.14.1"]', '"User-Agent":[%s]' % forged)
    assert matched("opengram-login-caddy.conf.j2", line) is None


def test_caddy_ignores_opengrams_own_401():
    line = next(line for line in CADDY_LINES if '"client_ip"' in line and '"Authorization"' in line
                and '"status":401' in line)
    line = re.sub(r',"Www-Authenticate":\[[^\]]*\]|"Www-Authenticate":\[[^\]]*\],?', "", line)
    assert "Www-Authenticate" not in line
    assert matched("opengram-login-caddy.conf.j2", line) is None


@pytest.mark.parametrize("line, address", [
    (" login failed from 192.0.2.7", "192.0.2.7"),
    (" login failed from 2001:db8::5", "2001:db8::5"),
    (" login failed from 192.0.2.7 extra", None),
    ("x login failed from 192.0.2.7", None),
])
def test_nginx_lines(line, address):
    # fail2ban has taken the leading ISO 8601 time off the line.
    assert matched("opengram-login-nginx.conf.j2", line) == address
