"""Security headers (issue 28), seen from a client through the proxy: every
answer of the web app and the API carries each of them exactly once.

Opengram 0.2.1 sends none of them on its page, its assets or its API answers
(tests/contract/contract.yml says so for the real release and the stand-in),
but its file downloads carry their own X-Content-Type-Options and a strict
Content-Security-Policy: the proxies add a header only where the answer has
none, so those keep the app's values and nothing is doubled.
"""

import json
import time

import pytest

from conftest import basic_auth

# What the proxies send by default (caddy_security_headers, nginx_security_headers).
EXPECTED = {
    "strict-transport-security": None,  # its value: test_hardening.py
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
}
# Opengram's own, on GET /api/v1/files/{id} (0.2.1).
FILE_CSP = "default-src 'none'; script-src 'none'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"


def response_headers(site, path, *args):
    """(status, {lower-case name: [values]}) of a GET through the proxy (the body is dropped)."""
    result = site.curl("--dump-header", "-", "--output", "/dev/null", *args, site.base + path)
    assert result.rc == 0, result.stderr
    lines = result.stdout.replace("\r", "").splitlines()
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers.setdefault(name.strip().lower(), []).append(value.strip())
    return status, headers


def assert_each_once(headers, expected, what):
    for name, value in expected.items():
        values = headers.get(name, [])
        assert len(values) == 1, "%s: %s %d times: %r" % (what, name, len(values), values)
        if value is not None:
            assert values[0] == value, "%s: %s is %r, not %r" % (what, name, values[0], value)


@pytest.mark.parametrize("what, path, status, credentials", [
    ("the page", "/", 200, "password"),
    ("a deep link (the page)", "/chats/some-chat", 200, "password"),
    ("an asset", "/favicon.ico", 200, "password"),
    ("health", "/api/v1/health", 200, None),
    ("the chat list", "/api/v1/chats", 200, "secret"),
    ("the chat list, anonymous", "/api/v1/chats", 401, None),
])
def test_security_headers_once_on_app_answers(site, what, path, status, credentials):
    args = {"password": basic_auth(site), "secret": site.auth_header(), None: []}[credentials]
    got, headers = response_headers(site, path, *args)
    assert got == status, "%s (%s): %d" % (what, path, got)
    assert_each_once(headers, EXPECTED, "%s (%s)" % (what, path))


def test_file_download_keeps_the_apps_own_headers(site):
    """The app's nosniff and Content-Security-Policy on a file download stay
    the only ones; the proxy adds what the app does not send."""
    path = "/opt/ogd-probes/headers-%d.txt" % time.time_ns()
    site.client.check_output("printf '<b>hello</b>' > %s", path)
    status, body = site.upload(path)
    assert status == 201, body
    media_id = json.loads(body)["id"]
    got, headers = response_headers(site, "/api/v1/files/" + media_id, *site.auth_header())
    assert got == 200, headers
    assert_each_once(headers, {**EXPECTED, "content-security-policy": FILE_CSP}, "a file download")
