"""Switching a host between proxies with the same inventory (runs last: it
converges the host twice and leaves it as it found it)."""

import json

import pytest

from conftest import run_playbook


def proxy_state(site, proxy):
    service = site.host.service(proxy)
    return service.is_running, service.is_enabled


def served_by(site):
    """The proxy that answers on 443, by its own Server header (Caddy) or nginx's."""
    head = site.curl("--head", site.base + "/api/v1/health")
    assert head.rc == 0, head.stderr
    server = [l.split(":", 1)[1].strip().lower() for l in head.stdout.splitlines() if l.lower().startswith("server:")]
    return server[0] if server else ""


def test_switch_caddy_to_nginx_and_back(caddy_site):
    site = caddy_site
    if not site.switch_test:
        pytest.skip("ogd_test_switch_proxies is off for this scenario")
    assert served_by(site) == "caddy"

    to_nginx = run_playbook("--limit", site.name, "-e", json.dumps({"opengram_proxy": "nginx"}))
    assert to_nginx.returncode == 0, to_nginx.stdout[-3000:]
    assert served_by(site).startswith("nginx")
    assert proxy_state(site, "caddy") == (False, False)
    assert proxy_state(site, "nginx") == (True, True)
    assert json.loads(site.curl(site.base + "/api/v1/health").stdout)["status"] == "ok"

    back = run_playbook("--limit", site.name)
    assert back.returncode == 0, back.stdout[-3000:]
    assert served_by(site) == "caddy"
    assert proxy_state(site, "nginx") == (False, False)
    assert proxy_state(site, "caddy") == (True, True)
    # nginx no longer holds any port; our site is out of sites-enabled.
    assert not site.host.file("/etc/nginx/sites-enabled/opengram").exists
    listeners = site.host.check_output("ss -Htlnp")
    assert "nginx" not in listeners
