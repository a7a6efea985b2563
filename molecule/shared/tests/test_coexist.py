"""Issue 14, coexistence: the host's other sites stay as they were. Hosts with
ogd_test_other_sites run an operator's own site (Caddy, nginx or both) from
before the first converge (molecule/shared/prepare.yml); it answers the same
after the converge, here, after the proxy switch both ways (test_switch.py)
and after the uninstall and reinstall (test_data.py)."""

import json
import re

import pytest

from conftest import assert_other_sites_answer_as_before

MARKED = re.compile(r"^[ \t]*# BEGIN opengram-deploy: (.*?)\n.*?^[ \t]*# END opengram-deploy: \1\n", re.S | re.M)
OPERATOR_CADDYFILE = "/root/ogd-test-operator-Caddyfile"


def test_other_sites_answer_as_before_the_first_converge(site):
    if not site.other_sites:
        pytest.skip("no other site on %s" % site.name)
    assert_other_sites_answer_as_before(site, "after the converge")
    for proxy in site.other_sites:
        service = site.host.service(proxy)
        assert (service.is_running, service.is_enabled) == (True, True), proxy
    # Ours answers beside them.
    assert json.loads(site.curl(site.base + "/api/v1/health").stdout)["status"] == "ok"


def test_the_caddyfile_is_the_operators_plus_our_two_blocks(caddy_site):
    host = caddy_site.host
    caddyfile = host.file("/etc/caddy/Caddyfile").content_string
    assert sorted(MARKED.findall(caddyfile)) == ["global options", "site"]
    if "caddy" in caddy_site.other_sites:
        assert MARKED.sub("", caddyfile) == host.file(OPERATOR_CADDYFILE).content_string
    # Our site is in its own file, imported.
    assert caddy_site.domain + " {" in host.file("/etc/caddy/opengram-deploy/site.caddy").content_string


def test_nginx_keeps_debians_default_site_and_is_not_the_default_server(nginx_site):
    host = nginx_site.host
    if not host.file("/etc/nginx/sites-enabled/default").is_symlink:
        pytest.skip("the operator took Debian's default site out on %s" % nginx_site.name)
    assert "default_server" not in host.file("/etc/nginx/sites-available/opengram").content_string
    # A name that is not ours lands on Debian's default site, not on Opengram.
    other = nginx_site.client.run(
        "curl --silent --max-time 10 --header 'Host: not-ours.test' http://%s/", nginx_site.domain)
    assert other.rc == 0, other.stderr
    assert "Welcome to nginx" in other.stdout
