"""The site's other names (opengram_domain_aliases, issue 30 item 8), seen from a
client that trusts only Pebble's root: each alias answers HTTPS with a certificate
valid for the alias (behind nginx the site's one certificate, which lists the
domain and every alias; Caddy gets one per name from the same CA) and sends every
request to the same path and query under https://<opengram_domain> (301/308);
http://<alias> goes to https:// first. Only hosts with aliases run these checks
(alias_app, conftest.py): elsewhere they are reported as skipped.

Behind nginx, the name list changes both ways on the live host: an alias taken
away, then added again. Each time certbot re-issues the one certificate for the
new list, and an added name's ACME challenge must reach the webroot through the
existing site first (the nginx role's bootstrap writes the site's new names
before the certbot role asks)."""

import json

from conftest import PEBBLE_ROOT, Site, run_playbook, wait_for
from playbook import output

PATH = "/chats/some-chat?x=1&y=two"
REDIRECT = (301, 308)


def redirect_of(site, url):
    """(HTTP status, Location) of one request from the client, not followed; curl
    verifies the certificate against Pebble's root and the URL's host name."""
    result = site.curl("--output", "/dev/null", "--write-out", "%{http_code} %{redirect_url}", url)
    assert result.rc == 0, "%s: curl exit %d: %s" % (url, result.rc, result.stderr)
    status, _, location = result.stdout.partition(" ")
    return int(status), location


def served_certificate(site, name):
    """(SHA-256 fingerprint, DNS names) of the certificate served for `name` (SNI),
    verified for that host name against Pebble's root only."""
    result = site.client.run(
        "echo | openssl s_client -connect %s:443 -servername %s -CAfile %s -verify_return_error"
        " -verify_hostname %s 2>/dev/null | openssl x509 -noout -fingerprint -sha256 -ext subjectAltName",
        name, name, PEBBLE_ROOT, name)
    assert result.rc == 0 and "Fingerprint=" in result.stdout, \
        "%s: no certificate valid for that name: %s%s" % (name, result.stdout, result.stderr)
    lines = result.stdout.splitlines()
    fingerprint = lines[0].split("=", 1)[1]
    names = {part.strip()[len("DNS:"):] for line in lines[1:] for part in line.split(",")
             if part.strip().startswith("DNS:")}
    return fingerprint, names


def test_each_alias_has_a_certificate_valid_for_its_name(alias_site):
    site = alias_site
    main_fingerprint, main_names = served_certificate(site, site.domain)
    for alias in site.aliases:
        fingerprint, names = served_certificate(site, alias)
        assert alias in names, (alias, names)
        if site.proxy == "nginx":
            # One certificate (certbot_domains: the domain and every alias).
            assert fingerprint == main_fingerprint, "%s is served another certificate than %s" % (alias, site.domain)
            assert main_names == {site.domain, *site.aliases}, main_names


def test_each_alias_redirects_to_the_same_path_and_query_on_the_domain(alias_site):
    site = alias_site
    for alias in site.aliases:
        status, location = redirect_of(site, "https://%s%s" % (alias, PATH))
        assert status in REDIRECT and location == "https://%s%s" % (site.domain, PATH), (alias, status, location)


def test_http_on_an_alias_goes_to_https_and_on_to_the_domain(alias_site):
    site = alias_site
    for alias in site.aliases:
        status, location = redirect_of(site, "http://%s%s" % (alias, PATH))
        assert status in REDIRECT and location == "https://%s%s" % (alias, PATH), (alias, status, location)
        # Followed to the end: the open health check, answered under the domain.
        result = site.curl("--location", "--output", "/dev/null", "--write-out", "%{http_code} %{url_effective}",
                           "http://%s/api/v1/health" % alias)
        assert result.rc == 0, result.stderr
        assert result.stdout == "200 https://%s/api/v1/health" % site.domain, (alias, result.stdout)


def test_a_write_to_an_alias_is_redirected_with_308(alias_site):
    """308, not 301 (which a client may follow as a GET): the write reaches the domain as a write."""
    site = alias_site
    for alias in site.aliases:
        result = site.curl("-X", "POST", "--output", "/dev/null", "--write-out", "%{http_code} %{redirect_url}",
                           "https://%s/api/v1/chats" % alias)
        assert result.rc == 0, result.stderr
        assert result.stdout == "308 https://%s/api/v1/chats" % site.domain, (alias, result.stdout)


def test_nginx_reissues_the_one_certificate_when_an_alias_goes_and_comes_back(nginx_alias_app, deployment, clients):
    """(Caddy takes each name on its own, a certificate per name: nothing to re-issue.)"""
    site = Site(nginx_alias_app, deployment[nginx_alias_app], clients[0], clients[1])
    without = run_playbook("--limit", site.name, "-e", json.dumps({"opengram_domain_aliases": []}))
    assert without.returncode == 0, output(without, 4000)
    # nginx reloads gracefully: its new workers serve the new certificate within moments.
    wait_for(lambda: served_certificate(site, site.domain)[1] == {site.domain}, 15,
             "the domain's certificate without the alias")
    # Back to the inventory's aliases: the site answers the new names' challenges, the
    # certificate covers them again, and they redirect as before.
    back = run_playbook("--limit", site.name)
    assert back.returncode == 0, output(back, 4000)
    wait_for(lambda: served_certificate(site, site.domain)[1] == {site.domain, *site.aliases}, 15,
             "the domain's certificate with the alias again")
    test_each_alias_has_a_certificate_valid_for_its_name(site)
    test_each_alias_redirects_to_the_same_path_and_query_on_the_domain(site)
