"""nginx's login sessions (issue 28 item 3): a login costs one bcrypt check, not one per request.

A browser that passed the password gate gets a signed session cookie
(roles/nginx/files/etc/nginx/opengram-session.js); while it is valid nginx
runs no bcrypt check for it. Requests that would run one (basic credentials
and no valid session) are limited per client BEFORE the check. Caddy keeps
verified credentials in memory by itself and has no such cookie. The cost
side by side (proxy CPU per page load and per wrong password) is bench/login_cost.py.
"""

import base64
import hashlib
import hmac
import re
import time

from conftest import SESSION_COOKIE, ansible_json, basic_header, client_address, request, session_of

SECRET_FILE = "/etc/nginx/opengram-session-secret.conf"
SITE_FILE = "/etc/nginx/sites-available/opengram"
FAILURES_LOG = "/var/log/nginx/opengram-login-failures.log"
BOOTSTRAP = "window.__OPENGRAM_BOOTSTRAP__"
SETTINGS = ('{"lifetime": nginx_login_session_lifetime | default(43200) | int,'
            ' "burst": nginx_login_check_burst | default(10) | int}')


def with_cookie(value):
    return ["-H", "Cookie: %s=%s" % (SESSION_COOKIE, value)]


def signed(site, user, expires):
    """A session cookie for user, signed as the host signs (its secret and users-file version)."""
    secret = re.search(r'default "([0-9a-f]{64})";', site.host.check_output("cat %s", SECRET_FILE)).group(1)
    version = re.search(r'map \$host \$opengram_session_version \{\s*default "([0-9a-f]+)";',
                        site.host.check_output("cat %s", SITE_FILE)).group(1)
    u = base64.urlsafe_b64encode(user.encode()).decode().rstrip("=")
    mac = hmac.new(secret.encode(), ("v1|%s|%s|%d" % (version, u, expires)).encode(), hashlib.sha256).digest()
    return "v1.%d.%s.%s" % (expires, u, base64.urlsafe_b64encode(mac).decode().rstrip("="))


def test_a_login_gets_a_session_that_opens_the_site_without_the_password(nginx_site):
    site = nginx_site
    settings = ansible_json(site.name, SETTINGS)[site.name]
    status, headers, body = request(site, "/", *basic_header(site.access_user, site.access_password))
    assert status == 200 and BOOTSTRAP in body
    value, attrs = session_of(headers)
    assert value, "no session cookie after a login: %s" % headers.get("set-cookie")
    assert {k: attrs.get(k) for k in ("path", "max-age", "secure", "httponly", "samesite")} == {
        "path": "/", "max-age": str(settings["lifetime"]), "secure": "", "httponly": "", "samesite": "Lax"}, attrs
    # The cookie alone (no password): the page, an asset, the API's documentation.
    status, headers, body = request(site, "/", *with_cookie(value))
    assert status == 200 and BOOTSTRAP in body and site.token in body
    assert session_of(headers)[0] is None, "a valid session was issued a new cookie"
    asset = re.search(r'src="(/assets/[^"]+\.js)"', body)
    for path in ([asset.group(1)] if asset else []) + ["/api/v1/doc"]:
        assert request(site, path, *with_cookie(value))[0] == 200, path
    # From the other client too (a cookie is not tied to an address), and
    # without it the gate is closed as before.
    assert request(site, "/", *with_cookie(value), client=site.other_client)[0] == 200
    status, _, body = request(site, "/")
    assert status == 401 and site.token not in body
    # Open locations never issue a session, whatever credentials come with them.
    _, headers, _ = request(site, "/api/v1/health", *basic_header(site.access_user, site.access_password))
    assert session_of(headers)[0] is None


def test_a_forged_or_expired_session_is_refused(nginx_site):
    site = nginx_site
    now = int(time.time())
    good = signed(site, site.access_user, now + 600)
    # The cookie the test signs is the host's own kind (so the refusals below are the checks').
    assert request(site, "/", *with_cookie(good))[0] == 200
    v, expires, user, mac = good.split(".")
    forged = {
        "expired": signed(site, site.access_user, now - 5),
        "a changed MAC": ".".join([v, expires, user, mac[:-2] + ("AA" if mac[-2:] != "AA" else "BB")]),
        "a later expiry": ".".join([v, str(int(expires) + 86400), user, mac]),
        "another user": ".".join([v, expires, base64.urlsafe_b64encode(b"admin").decode().rstrip("="), mac]),
        "another version": "v2." + good.split(".", 1)[1],
        "an empty value": "",
        "garbage": "v1.x.y.z",
    }
    for what, value in forged.items():
        status, headers, body = request(site, "/", *with_cookie(value))
        assert status == 401 and site.token not in body, "a session with %s opened the site" % what
        assert session_of(headers)[0] is None


def test_password_checks_are_limited_before_bcrypt_but_sessions_are_not(nginx_site):
    site = nginx_site
    settings = ansible_json(site.name, SETTINGS)[site.name]
    _, headers, _ = request(site, "/", *basic_header(site.access_user, site.access_password), client=site.other_client)
    session = session_of(headers)[0]
    assert session
    other = client_address(site.other_client)
    # nginx's limit is looked at here, not the ban (test_ban.py).
    site.host.check_output("fail2ban-client set opengram-login addignoreip %s" % other)
    try:
        failures_before = len(site.host.check_output("cat %s", FAILURES_LOG).splitlines())
        tries = settings["burst"] + 4
        statuses = [request(site, "/", *basic_header(site.access_user, "guess-%d" % i), client=site.other_client)[0]
                    for i in range(tries)]
        print("%d wrong passwords from one client:" % tries, statuses)
        assert statuses[0] == 401 and statuses.count(429) >= 3 and set(statuses) == {401, 429}, statuses
        # Only the checks that ran are failed logins (the 429s cost no check).
        failures = site.host.check_output("cat %s", FAILURES_LOG).splitlines()[failures_before:]
        assert len(failures) == statuses.count(401), failures
        # The limited client: the right password is limited too (it would cost a
        # check), its session is not; the other client logs in.
        assert request(site, "/", *basic_header(site.access_user, site.access_password), client=site.other_client)[0] == 429
        assert request(site, "/", *with_cookie(session), client=site.other_client)[0] == 200
        assert request(site, "/", *basic_header(site.access_user, site.access_password))[0] == 200
        # A request without credentials (a browser's first) is not a check.
        assert request(site, "/", client=site.other_client)[0] == 401
    finally:
        site.host.check_output("fail2ban-client set opengram-login delignoreip %s" % other)
        site.host.check_output("fail2ban-client unban --all")
