"""Private by default (issue 11): who can reach the site, from the clients.

The password gate (the scenarios' default mode) covers every path but /api/
(/api/v1/doc and /api/v1/reference are behind it too); /api/ goes to
Opengram, which demands the instance secret for every read, write and the
event stream; /api/v1/health is open to everyone. The networks mode is
checked in the caddy scenario only and the public mode in the nginx
scenario only (each re-runs site.yml twice on the scenario's host).
"""

import base64
import json
import os

import pytest

from conftest import (basic_auth, basic_header, client_address, host_instance_secret, request, run_playbook,
                      SESSION_COOKIE, session_of, skip_unless_scenario_flag)
from playbook import (ACCESS_HASHES_FILE, assert_secrets_absent, host_access_hashes, output, recap,
                      run_with_vars, task_statuses)

BOOTSTRAP = "window.__OPENGRAM_BOOTSTRAP__"
# Paths Opengram answers with its web page (which carries the secret), and
# ways of spelling them that a sloppy gate would take for /api/.
PAGES = ["/", "/index.html", "/chats/some-chat", "/settings", "/sw.js", "/assets/index.js",
         "/api/v1/doc", "/api/v1/reference"]
TRICKS = ["/API/v1/chats", "/Api/v1/health", "//api/v1/chats", "/api/../", "/api/%2e%2e/", "/api/v1/%2e%2e/%2e%2e/",
          "/api/v1/health/../../", "/api/v1/health/..%2f..%2f", "//api/v1/health", "/api", "/api/",
          "/api/./v1/../../index.html", "/api/v1\\..\\..\\", "/./api/v1/chats", "/api/v1/docx"]


def fetch(site, path, *args, client=None):
    """(status, headers+body) of one request; --path-as-is keeps dot segments as sent."""
    result = site.curl("--path-as-is", "--include", "--max-time", "8", "--write-out", "\n%{http_code}", *args,
                       site.base + path, client=client)
    text, _, status = result.stdout.rpartition("\n")
    return int(status or 0), text


def assert_no_secret(site, text, what):
    assert site.token, "no instance secret on %s" % site.name
    assert site.token not in text, "%s handed out the instance secret" % what
    assert BOOTSTRAP not in text, "%s served the web app's bootstrap" % what


def standin(site):
    return "opengram-standin" in site.host.run("cat /opt/opengram/current/lib/node_modules/@opengramsh/opengram/"
                                               "package.json").stdout


@pytest.fixture
def unbannable(site):
    """Both clients exempt from the login ban (test_ban.py) while a check here fails logins on
    purpose: the gate is what these checks look at, and a ban would refuse their next request."""
    present = site.host.run("fail2ban-client status opengram-login").rc == 0
    addresses = " ".join(client_address(c) for c in (site.client, site.other_client))

    def ignore(verb):
        site.host.check_output("for a in %s; do fail2ban-client set opengram-login %s $a; done" % (addresses, verb))

    if present:
        ignore("addignoreip")
    yield
    if present:
        ignore("delignoreip")


# ---- anonymous ------------------------------------------------------------------------------


def test_an_instance_secret_was_generated_and_kept_root_only(site):
    secret = site.host.file("/etc/opengram/instance-secret")
    assert secret.exists and secret.user == "root" and secret.mode == 0o600
    assert site.token.startswith("og_") and len(site.token) >= 3 + 43, "og_ + base64url of >= 32 bytes"
    assert site.host.file("/etc/opengram/opengram.env").contains("OPENGRAM_INSTANCE_SECRET=")


def test_each_host_has_its_own_secret(deployment, site):
    others = [h for h in deployment if h != site.name]
    if not others:
        pytest.skip("one Opengram host in this scenario")
    import testinfra
    for other in others:
        theirs = host_instance_secret(testinfra.get_host("docker://" + other))
        assert theirs != site.token
        # ...and another host's secret opens nothing here.
        status = site.curl("--output", "/dev/null", "--write-out", "%{http_code}", "-H",
                           "Authorization: Bearer " + theirs, site.base + "/api/v1/chats").stdout
        assert status == "401", "%s's secret opened %s's API (%s)" % (other, site.name, status)


def test_the_playbook_owns_read_endpoints_require_instance_secret(site):
    config = json.loads(site.host.check_output("cat /var/lib/opengram/opengram.config.json"))
    assert config["security"]["readEndpointsRequireInstanceSecret"] is True


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_pages_get_401_and_no_secret(site, path):
    status, text = fetch(site, path)
    assert status == 401, (path, status, text[:500])
    assert "www-authenticate: basic" in text.lower(), text[:500]
    assert_no_secret(site, text, "anonymous GET " + path)


@pytest.mark.parametrize("path", TRICKS)
def test_anonymous_tricky_paths_never_reach_the_page(site, path):
    status, text = fetch(site, path)
    print("%s %s -> %s" % (site.proxy, path, status))
    assert status in (301, 400, 401, 404), (path, status, text[:500])
    assert_no_secret(site, text, "anonymous GET " + path)


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/api/v1/chats", None),
    ("GET", "/api/v1/config", None),
    ("GET", "/api/v1/chats?token=wrong", None),
    ("POST", "/api/v1/chats", '{"agentIds":["assistant"],"modelId":"default"}'),
    ("PATCH", "/api/v1/config/admin", '{"security":{"instanceSecretEnabled":false}}'),
    ("GET", "/api/v1/events/stream", None),
    ("GET", "/api/v1/events/stream?token=og_wrong", None),
])
def test_anonymous_api_gets_401(site, method, path, body):
    args = ["-X", method] + (["-H", "Content-Type: application/json", "--data", body] if body else [])
    status, text = fetch(site, path, *args)
    assert status == 401, (method, path, status, text[:500])
    assert_no_secret(site, text, "anonymous %s %s" % (method, path))


def test_health_is_open(site):
    status, text = fetch(site, "/api/v1/health")
    assert status == 200 and '"status":"ok"' in text.replace(" ", "")


def test_a_wrong_password_gets_401(site, unbannable):
    bad = base64.b64encode(("%s:not-the-password-at-all" % site.access_user).encode()).decode()
    status, text = fetch(site, "/", "-H", "Authorization: Basic " + bad)
    assert status == 401
    assert_no_secret(site, text, "a wrong password")


def test_the_secret_alone_does_not_open_the_web_app(site, unbannable):
    status, text = fetch(site, "/", *site.auth_header())
    assert status == 401
    assert_no_secret(site, text, "Bearer on the web app")


# ---- with the password, with the secret -------------------------------------------------------


def test_the_password_opens_the_web_app_with_its_bootstrap(site):
    status, text = fetch(site, "/", *basic_auth(site))
    assert status == 200, text[:500]
    assert BOOTSTRAP in text and site.token in text
    for path in ("/api/v1/doc", "/chats/x"):
        assert fetch(site, path, *basic_auth(site))[0] == 200, path


def test_the_secret_alone_opens_the_api(site):
    status, text = fetch(site, "/api/v1/chats", *site.auth_header())
    assert status == 200, text[:500]
    status, text = fetch(site, "/api/v1/config", *site.auth_header())
    assert status == 200, text[:500]
    status, text = fetch(site, "/api/v1/chats", "-X", "POST", "-H", "Content-Type: application/json",
                         "--data", '{"agentIds":["assistant"],"modelId":"default","title":"access"}',
                         *site.auth_header())
    assert status == 201, text[:500]


def test_the_event_stream_opens_with_bearer_and_with_token(site):
    for args, path in (([*site.auth_header()], "/api/v1/events/stream"),
                       ([], "/api/v1/events/stream?token=" + site.token)):
        result = site.curl("--include", "--max-time", "3", *args, site.base + path)
        assert result.stdout.startswith("HTTP/2 200") or " 200" in result.stdout.splitlines()[0], result.stdout[:300]
        assert "text/event-stream" in result.stdout.lower()


# ---- logs ---------------------------------------------------------------------------------------


def wait_until_healthy(site, timeout=120):
    """Poll Opengram's health on the host until it answers (after a start)."""
    import time
    deadline = time.monotonic() + timeout
    while site.host.run("curl --silent --fail --max-time 2 http://127.0.0.1:%s/api/v1/health", str(site.port)).rc:
        assert time.monotonic() < deadline, "Opengram not healthy %d s after its start" % timeout
        time.sleep(0.5)


def test_no_log_holds_the_secret_or_the_password(site, unbannable):
    # Traffic first: a browser-like client (basic auth, ?token= stream) and an agent (Bearer).
    fetch(site, "/", *basic_auth(site))
    site.curl("--max-time", "2", site.base + "/api/v1/events/stream?token=" + site.token)
    fetch(site, "/api/v1/chats", *site.auth_header())
    fetch(site, "/", "-H", "Authorization: Basic " + base64.b64encode(b"ogtest:wrong-password-x").decode())
    # A browser reconnecting its event stream while Opengram restarts (every
    # deploy that changes it): the proxy answers 502 and logs an error, which
    # must not carry the ?token= either (Caddy's error log names the request).
    site.host.check_output("systemctl stop opengram")
    try:
        status, _ = fetch(site, "/api/v1/events/stream?token=" + site.token)
        assert status in (502, 503, 504), status
    finally:
        site.host.check_output("systemctl start opengram")
        wait_until_healthy(site)
    logs = site.host.run("journalctl --no-pager -o cat 2>/dev/null; cat /var/log/nginx/*.log 2>/dev/null;"
                         " cat /var/log/caddy/*.log 2>/dev/null").stdout
    assert len(logs) > 1000, "no logs to look at"
    credentials = base64.b64encode(("%s:%s" % (site.access_user, site.access_password)).encode()).decode()
    for secret, what in ((site.token, "the instance secret"), (site.access_password, "the password"),
                         (credentials, "the basic auth header")):
        assert secret and secret not in logs, "%s is in a log on %s" % (what, site.name)
    if site.proxy == "nginx":
        assert "/api/v1/events/stream" in logs and "token=" not in logs.split("GET /api/v1/events/stream", 1)[1][:40]
    if site.proxy == "caddy":
        assert "/api/v1/events/stream" in logs, "Caddy's access log is off: nothing was proved"


# ---- other modes (they re-run the playbook; every scenario, issue 11) ---------------------------


def _run_with(site, values):
    return run_with_vars(values, "--limit", site.name)


def test_caddy_networks_mode_and_secret_rotation(caddy_site):
    """networks + password: the allowed client works (with the password), the other gets 403
    everywhere but health. The same run rotates the secret: old refused, new accepted."""
    site = caddy_site
    old = site.token
    new = "og_" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    allowed = client_address(site.client)
    run = _run_with(site, {"opengram_access_modes": ["networks", "password"],
                           "opengram_access_networks": [allowed + "/32"], "opengram_instance_secret": new})
    try:
        assert run.returncode == 0, output(run, 4000)
        assert new not in output(run) and old not in output(run)
        assert host_instance_secret(site.host) == new
        # The allowed client: gate as before.
        assert fetch(site, "/")[0] == 401
        assert fetch(site, "/", *basic_auth(site))[0] == 200
        assert fetch(site, "/api/v1/chats", "-H", "Authorization: Bearer " + new)[0] == 200
        assert fetch(site, "/api/v1/chats", "-H", "Authorization: Bearer " + old)[0] == 401
        # The other client: 403 everywhere but health, password or secret.
        other = site.other_client
        for path, args in (("/", []), ("/", basic_auth(site)), ("/api/v1/chats", ["-H", "Authorization: Bearer " + new]),
                           ("/api/v1/doc", []), ("/api/v1/events/stream?token=" + new, []), ("//api/v1/health", [])):
            status, text = fetch(site, path, *args, client=other)
            assert status == 403, (path, status)
            assert new not in text
        assert fetch(site, "/api/v1/health", client=other)[0] == 200
    finally:
        restored = _run_with(site, {"opengram_instance_secret": old})
        assert restored.returncode == 0, output(restored, 4000)
    assert host_instance_secret(site.host) == old
    assert fetch(site, "/api/v1/chats", *site.auth_header(), client=site.other_client)[0] == 200


def test_nginx_public_mode_warns_and_serves_as_before(nginx_site):
    site = nginx_site
    run = _run_with(site, {"opengram_access_modes": ["public"]})
    try:
        assert run.returncode == 0, output(run, 4000)
        assert "WARNING: opengram_access_modes=[public]" in run.stdout
        assert "replace the whole configuration" in run.stdout
        status, text = fetch(site, "/")
        assert status == 200 and BOOTSTRAP in text, "public mode serves the page to anyone"
        # The API still demands the secret (the playbook owns readEndpointsRequireInstanceSecret).
        assert fetch(site, "/api/v1/chats")[0] == 401
        assert fetch(site, "/api/v1/chats", *site.auth_header())[0] == 200
    finally:
        restored = run_playbook("--limit", site.name)
        assert restored.returncode == 0, output(restored, 4000)
        assert "WARNING: opengram_access_modes=[public]" not in restored.stdout
    assert fetch(site, "/")[0] == 401


# ---- the login hashes (random salts, kept while they verify; never printed) --------------------

# Where each proxy takes the hashes from: nginx's user file (name:hash), Caddy's site file (base64).
PROXY_HASHES = {"nginx": "/etc/nginx/opengram.htpasswd", "caddy": "/etc/caddy/opengram-deploy/site.caddy"}
# The task that shows the proxy's hashes changing in a run (--check included).
PROXY_HASH_TASK = {"nginx": "opengram_deploy.opengram.nginx : Write the basic auth users (bcrypt hashes, not logged)",
                   "caddy": "opengram_deploy.opengram.common : Compare the live files with the wanted ones: Caddy's configuration"}
KEEP_TASK = "opengram_deploy.opengram.opengram : Keep the login hashes on the host (root only)"


def login(site, user, password, client=None):
    return fetch(site, "/", *basic_header(user, password), client=client)[0]


def nginx_session(site):
    """nginx: the login session cookie (name=value) a login is given; None behind Caddy."""
    if site.proxy != "nginx":
        return None
    status, headers, _ = request(site, "/", *basic_auth(site))
    value = session_of(headers)[0]
    assert status == 200 and value, headers
    cookie = "%s=%s" % (SESSION_COOKIE, value)
    assert fetch(site, "/", "-H", "Cookie: " + cookie)[0] == 200
    return cookie


def proxy_holds(site, hashed):
    text = site.host.check_output("cat %s", PROXY_HASHES[site.proxy])
    if site.proxy == "nginx":
        return ("%s:%s" % (site.access_user, hashed)) in text.splitlines()
    return base64.b64encode(hashed.encode()).decode() in text.split()


def test_the_login_hashes_are_kept_root_only_and_are_the_proxys(site):
    import bcrypt

    kept = site.host.file(ACCESS_HASHES_FILE)
    assert kept.exists and (kept.user, kept.group, kept.mode) == ("root", "root", 0o600)
    hashes = host_access_hashes(site.host)
    assert list(hashes) == [site.access_user]
    hashed = hashes[site.access_user]
    assert hashed.startswith("$2b$10$") and bcrypt.checkpw(site.access_password.encode(), hashed.encode())
    assert proxy_holds(site, hashed), "%s is not rendered from %s" % (PROXY_HASHES[site.proxy], ACCESS_HASHES_FILE)


def test_a_changed_password_gets_a_new_hash_and_no_run_prints_one(site, unbannable):
    """--check --diff -vvv with a changed password shows the change (the proxy's
    hashes would change) but no hash, old or new, and changes nothing; the real
    run (-vvv --diff) puts a new hash live (new password in, old out), printing
    none; back to the inventory's password, a new hash again (random salt)."""
    skip_unless_scenario_flag("ogd_test_safety_checks")
    import bcrypt

    before = host_access_hashes(site.host)[site.access_user]
    changed = {"opengram_access_users": [{"name": site.access_user,
                                          "password": "Hx-" + base64.b64encode(os.urandom(18)).decode()}]}
    new_password = changed["opengram_access_users"][0]["password"]

    check = run_with_vars(changed, "--limit", site.name, "--check", "--diff", "-vvv")
    assert check.returncode == 0, output(check, 4000)
    assert recap(check.stdout, site.name)["changed"] > 0
    for task in (KEEP_TASK, PROXY_HASH_TASK[site.proxy]):
        assert "changed" in task_statuses(check.stdout, task), "--check did not show %s changing" % task
    if site.proxy == "caddy":  # the site's diff is still shown, its hashes hidden
        assert "<bcrypt hash, not shown>" in check.stdout, output(check, 4000)
    assert_secrets_absent(site, check, "--check --diff -vvv with a changed password", passwords=[new_password],
                          hashes=[before])
    assert host_access_hashes(site.host)[site.access_user] == before, "--check changed the kept hash"
    assert login(site, site.access_user, site.access_password) == 200
    session = nginx_session(site)


    interim = None
    try:
        run = run_with_vars(changed, "--limit", site.name, "--diff", "-vvv")
        assert run.returncode == 0, output(run, 4000)
        interim = host_access_hashes(site.host)[site.access_user]
        assert interim != before and bcrypt.checkpw(new_password.encode(), interim.encode())
        assert proxy_holds(site, interim) and not proxy_holds(site, before)
        assert_secrets_absent(site, run, "a run (--diff -vvv) that changes the password", passwords=[new_password],
                              hashes=[before, interim])
        assert login(site, site.access_user, new_password) == 200
        assert login(site, site.access_user, site.access_password) == 401
        if session:  # nginx: a session of the old password ends with it
            assert fetch(site, "/", "-H", "Cookie: " + session)[0] == 401
    finally:
        restored = run_playbook("--limit", site.name, "--diff")
    assert restored.returncode == 0, output(restored, 4000)
    after = host_access_hashes(site.host)[site.access_user]
    assert after not in (before, interim), "the same password was given the same salt again"
    assert_secrets_absent(site, restored, "the run back to the inventory (--diff)", passwords=[new_password],
                          hashes=[before, interim])
    assert login(site, site.access_user, site.access_password) == 200
    assert login(site, site.access_user, new_password) == 401
