"""Caddy from the distribution or from Caddy's own repository (issue 27 item 3):
switching opengram_caddy_source moves the package both ways and keeps the site,
its certificate, the operator's own Caddy site and the login; a second run
changes nothing. Runs where ogd_test_caddy_source_switch is on (molecule/upgrade:
a host on Debian's Caddy, Caddy's layout served by the scenario's vendor host,
molecule/shared/vendor_repo.yml) and leaves the host as the inventory declares.
Where the inventory itself says upstream (real-caddy), the served binary is
checked to be upstream's."""

import json

import pytest

from conftest import assert_other_sites_answer_as_before, run_playbook
from playbook import recap
from test_data import output

REPOSITORY = "/etc/apt/sources.list.d/caddy-stable.sources"


def caddy_version(site):
    return site.host.check_output("caddy version").split()[0]


def package_version(site):
    return site.host.check_output("dpkg-query --show --showformat='${Version}' caddy")


def health(site):
    status, body = site.api("GET", "/api/v1/health")
    assert status == 200, body
    return json.loads(body)


def test_the_inventory_s_caddy_source_is_installed(caddy_site):
    site = caddy_site
    upstream = site.caddy_source == "upstream"
    assert site.host.file(REPOSITORY).exists == upstream
    policy = site.host.check_output("apt-cache policy caddy")
    installed_from = policy.split("***", 1)[1].splitlines()[1]
    assert ("vendor.opengram.test" in installed_from or "cloudsmith" in installed_from) == upstream, policy
    assert health(site)["status"] == "ok"


def test_switching_caddy_sources_keeps_the_site(caddy_site):
    site = caddy_site
    if not site.caddy_source_switch:
        pytest.skip("ogd_test_caddy_source_switch is off for this host")
    assert site.caddy_source == "distribution", "the switch starts from the distribution's Caddy"
    debian = package_version(site)
    certificate = site.served_certificate()
    assert_other_sites_answer_as_before(site, "before the Caddy source switch")

    up = run_playbook("--limit", site.name, "-e", json.dumps({"opengram_caddy_source": "upstream"}))
    assert up.returncode == 0, output(up)
    upstream = package_version(site)
    assert upstream != debian and caddy_version(site).startswith("v2.11"), (debian, upstream)
    assert site.host.file(REPOSITORY).exists
    assert site.served_certificate() == certificate, "the certificate was not kept"
    assert health(site)["status"] == "ok"
    assert_other_sites_answer_as_before(site, "on Caddy's own package")
    again = run_playbook("--limit", site.name, "-e", json.dumps({"opengram_caddy_source": "upstream"}))
    assert again.returncode == 0 and recap(again.stdout, site.name)["changed"] == 0, output(again)

    back = run_playbook("--limit", site.name)
    assert back.returncode == 0, output(back)
    assert package_version(site) == debian
    assert not site.host.file(REPOSITORY).exists
    assert site.served_certificate() == certificate
    assert health(site)["status"] == "ok"
    assert_other_sites_answer_as_before(site, "back on the distribution's Caddy")
