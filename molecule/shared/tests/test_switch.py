"""Switching a host between proxies with the same inventory (runs last: it
converges the host twice and leaves it as it found it)."""

import json

import pytest

from conftest import assert_other_sites_answer_as_before, ports_held_by, run_playbook


def proxy_state(site, proxy):
    service = site.host.service(proxy)
    return service.is_running, service.is_enabled


def served_by(site):
    """The proxy that answers on 443, by its own Server header (Caddy) or nginx's."""
    head = site.curl("--head", site.base + "/api/v1/health")
    assert head.rc == 0, head.stderr
    server = [l.split(":", 1)[1].strip().lower() for l in head.stdout.splitlines() if l.lower().startswith("server:")]
    return server[0] if server else ""


def expected_state(site, proxy):
    """A proxy that serves the operator's own site keeps running after it is
    retired (issue 14); one that served only ours is stopped and disabled."""
    return (True, True) if proxy in site.other_sites else (False, False)


def test_switch_caddy_to_nginx_and_back(caddy_site):
    site = caddy_site
    if not site.switch_test:
        pytest.skip("ogd_test_switch_proxies is off for this scenario")
    assert served_by(site) == "caddy"
    assert_other_sites_answer_as_before(site, "before the switch")

    to_nginx = run_playbook("--limit", site.name, "-e", json.dumps({"opengram_proxy": "nginx"}))
    assert to_nginx.returncode == 0, to_nginx.stdout[-3000:]
    assert served_by(site).startswith("nginx")
    assert proxy_state(site, "caddy") == expected_state(site, "caddy")
    assert proxy_state(site, "nginx") == (True, True)
    assert json.loads(site.curl(site.base + "/api/v1/health").stdout)["status"] == "ok"
    # Caddy, if it keeps serving the operator's site, left 80 and 443 to nginx.
    assert not {80, 443} & ports_held_by(site.host, "caddy")
    assert_other_sites_answer_as_before(site, "after the switch to nginx")

    back = run_playbook("--limit", site.name)
    assert back.returncode == 0, back.stdout[-3000:]
    assert served_by(site) == "caddy"
    assert proxy_state(site, "nginx") == expected_state(site, "nginx")
    assert proxy_state(site, "caddy") == (True, True)
    # nginx no longer holds 80 or 443 (nor any port if it had nothing else to
    # serve); our site is out of sites-enabled.
    assert not site.host.file("/etc/nginx/sites-enabled/opengram").exists
    assert not {80, 443} & ports_held_by(site.host, "nginx")
    if "nginx" not in site.other_sites:
        assert not ports_held_by(site.host, "nginx")
    assert_other_sites_answer_as_before(site, "after the switch back to Caddy")
