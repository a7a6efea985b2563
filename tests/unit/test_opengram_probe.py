"""The self-check probe (plugins/modules/opengram_probe.py and its
module_utils/opengram_probe_checks.py): how each failure is
explained, and the SSE-buffering, 502 and redirect paths against local servers on 127.0.0.1
(no other network)."""

import contextlib
import http.client
import http.server
import importlib.util
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "plugins/modules/opengram_probe.py"
CHECKS = ROOT / "plugins/module_utils/opengram_probe_checks.py"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    spec.loader.exec_module(loaded)
    return loaded


# The checks and their advice (the module's module_utils, as Ansible ships it
# with the module), then the module (Probe, main).
checks = _load("ansible_collections.opengram_deploy.opengram.plugins.module_utils.opengram_probe_checks", CHECKS)
probe = _load("opengram_probe", MODULE)

# Runs the module as a program (argv: the module_utils file, the module),
# its module_utils where Ansible's AnsiballZ would put it.
RUN_MODULE = """
import importlib.util, runpy, sys
spec = importlib.util.spec_from_file_location("ansible_collections.opengram_deploy.opengram.plugins.module_utils.opengram_probe_checks", sys.argv[1])
sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sys.modules[spec.name])
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture
def ctx():
    return checks.Context("chat.example.com", 443, host_label="chat-1", proxy="nginx", prober="ctl")


def codes(problems):
    return [p.code for p in problems]


# ---- pure diagnosis ---------------------------------------------------------------------------

def test_name_that_does_not_resolve(ctx):
    problem = checks.diagnose_dns_error(ctx, socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    assert (problem.check, problem.code) == ("dns", "dns_unresolved")
    assert "chat.example.com does not resolve from ctl" in problem.message
    assert "A (and/or AAAA) record" in problem.message and "chat-1" in problem.message


def test_dns_server_that_does_not_answer(ctx):
    problem = checks.diagnose_dns_error(ctx, socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"))
    assert problem.code == "dns_unavailable"
    assert "DNS server did not answer" in problem.message


def test_addresses_of_the_host_are_fine(ctx):
    assert checks.diagnose_addresses(ctx, ["192.0.2.10"], ["10.0.0.5", "192.0.2.10"]) is None
    # Same IPv6 address written differently; names (ansible_host) are ignored.
    assert checks.diagnose_addresses(ctx, ["2001:db8::1"], ["2001:db8:0::0001", "chat-1.internal"]) is None
    # Nothing to compare with: no finding.
    assert checks.diagnose_addresses(ctx, ["192.0.2.10"], ["chat-1.internal"]) is None


def test_name_resolving_elsewhere_is_a_problem_when_the_addresses_are_declared(ctx):
    problem = checks.diagnose_addresses(ctx, ["198.51.100.7"], ["192.0.2.10"], strict=True)
    assert problem.code == "dns_elsewhere"
    assert "resolves to 198.51.100.7" in problem.message and "192.0.2.10" in problem.message


def test_name_resolving_elsewhere_is_a_note_with_interface_addresses(ctx):
    note = checks.diagnose_addresses(ctx, ["198.51.100.7"], ["10.0.0.5"], strict=False)
    assert isinstance(note, str)
    assert "behind NAT" in note and "opengram_selfcheck_addresses" in note


@pytest.mark.parametrize("exc, code, words", [
    (ConnectionRefusedError(111, "Connection refused"), "port_closed", "Port 443 closed"),
    (socket.timeout("timed out"), "port_filtered", "Port 443 filtered"),
    (OSError(113, "No route to host"), "host_unreachable", "unreachable"),
])
def test_https_port_errors(ctx, exc, code, words):
    problem = checks.diagnose_connect_error(ctx, "192.0.2.10", 443, exc)
    assert problem.code == code
    assert words in problem.message
    assert "192.0.2.10" in problem.message


def test_closed_port_names_the_proxy_to_look_at(ctx):
    problem = checks.diagnose_connect_error(ctx, "192.0.2.10", 443, ConnectionRefusedError(111, "refused"))
    assert "systemctl status nginx" in problem.message and "On chat-1" in problem.message


def verify_error(code, message):
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed: " + message)
    exc.verify_code, exc.verify_message = code, message
    return exc


SERVED = {
    "subject": ((("commonName", "other.example.org"),),),
    "subjectAltName": (("DNS", "other.example.org"), ("DNS", "www.other.example.org")),
    "issuer": ((("organizationName", "Let's Encrypt"),), (("commonName", "R11"),)),
    "notBefore": "Jan  1 00:00:00 2020 GMT",
    "notAfter": "Apr  1 00:00:00 2020 GMT",
}


def test_expired_certificate(ctx):
    problem = checks.diagnose_tls_error(ctx, verify_error(10, "certificate has expired"), SERVED)
    assert problem.code == "cert_expired"
    assert "expired on Apr  1 00:00:00 2020 GMT" in problem.message
    assert "certbot renew --dry-run" in problem.message  # nginx: certbot is the ACME client


def test_certificate_for_another_name(ctx):
    problem = checks.diagnose_tls_error(ctx, verify_error(62, "Hostname mismatch"), SERVED)
    assert problem.code == "cert_wrong_name"
    assert "for other.example.org, www.other.example.org, not chat.example.com" in problem.message


@pytest.mark.parametrize("code", [18, 19, 20, 21])
def test_untrusted_certificate(ctx, code):
    problem = checks.diagnose_tls_error(ctx, verify_error(code, "unable to get local issuer certificate"), SERVED,
                                       ca_file="/etc/ssl/private-ca.pem")
    assert problem.code == "cert_untrusted"
    assert "issued by R11" in problem.message
    assert "/etc/ssl/private-ca.pem on ctl" in problem.message
    assert "opengram_selfcheck_ca_file" in problem.message


def test_no_certificate_yet_and_plain_http_on_443(ctx):
    alert = ssl.SSLError(1, "[SSL: TLSV1_ALERT_INTERNAL_ERROR] tlsv1 alert internal error")
    assert checks.diagnose_tls_error(ctx, alert).code == "tls_no_certificate"
    plain = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    assert checks.diagnose_tls_error(ctx, plain).code == "tls_plain_http"


def test_certificate_expiring_soon(ctx):
    now = ssl.cert_time_to_seconds("Mar 25 00:00:00 2020 GMT")
    problem = checks.diagnose_expiry(ctx, SERVED, 14, now=now)
    assert problem.code == "cert_expiring" and "in 7 days" in problem.message
    assert checks.diagnose_expiry(ctx, SERVED, 5, now=now) is None


# ---- the age rule: the lesser of the days and a share of the certificate's own lifetime ------------

def issued(not_before, hours):
    start = ssl.cert_time_to_seconds(not_before)
    return {"notBefore": not_before,
            "notAfter": time.strftime("%b %d %H:%M:%S %Y GMT", time.gmtime(start + hours * 3600))}, start


@pytest.fixture
def internal_ctx():
    return checks.Context("chat.internal", 443, host_label="chat-1", proxy="caddy", prober="ctl",
                          tls_mode="internal")


def test_threshold_is_the_lesser_of_the_days_and_a_fifth_of_the_lifetime():
    ninety, _ = issued("Jan  1 00:00:00 2030 GMT", 90 * 24)
    assert checks.expiry_threshold(ninety, 14, 0.2) == (14.0, 90.0)
    twelve, _ = issued("Jan  1 00:00:00 2030 GMT", 12)
    needed, lifetime = checks.expiry_threshold(twelve, 14, 0.2)
    assert lifetime == 0.5 and abs(needed * 24 - 2.4) < 1e-9
    assert checks.expiry_threshold({"notAfter": "Jan  1 00:00:00 2030 GMT"}, 14, 0.2) == (14.0, None)


def test_local_certificate_of_12_hours_with_11_left_passes(internal_ctx, ctx):
    served, start = issued("Jan  1 00:00:00 2030 GMT", 12)
    for context in (internal_ctx, ctx):
        assert checks.diagnose_expiry(context, served, 14, now=start + 3600) is None
    # With 2 hours left (less than a fifth of 12 hours) Caddy missed its renewal.
    problem = checks.diagnose_expiry(internal_ctx, served, 14, now=start + 10 * 3600)
    assert problem.code == "cert_expiring"
    assert "in 2 hours, less than 20% of its 12 hours lifetime" in problem.message
    assert "Caddy's local CA (opengram_tls_mode: internal" in problem.message
    assert DEFAULT_ROOT in problem.message
    assert "ACME" not in problem.message and "port 80" not in problem.message


def test_ninety_day_certificate_still_needs_14_days(ctx):
    served, start = issued("Jan  1 00:00:00 2030 GMT", 90 * 24)
    assert checks.diagnose_expiry(ctx, served, 14, now=start + 75 * 86400) is None
    problem = checks.diagnose_expiry(ctx, served, 14, now=start + 77 * 86400)
    assert problem.code == "cert_expiring"
    assert "(in 13 days); ACME clients renew 30 days ahead" in problem.message


DEFAULT_ROOT = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"


def test_internal_mode_speaks_of_caddys_local_ca_not_acme(internal_ctx):
    untrusted = checks.diagnose_tls_error(internal_ctx, verify_error(20, "unable to get local issuer certificate"),
                                         SERVED)
    assert untrusted.code == "cert_untrusted"
    assert untrusted.message.startswith("Certificate not from Caddy's local CA: chat.internal serves a "
                                        "certificate issued by R11")
    assert "its root is %s on chat-1" % DEFAULT_ROOT in untrusted.message
    assert "opengram_selfcheck_local_ca_root" in untrusted.message
    expired = checks.diagnose_tls_error(internal_ctx, verify_error(10, "certificate has expired"), SERVED)
    none_yet = checks.diagnose_tls_error(internal_ctx, ssl.SSLError(1, "[SSL: TLSV1_ALERT_INTERNAL_ERROR] x"))
    port80 = checks.diagnose_redirect_error(internal_ctx, ConnectionRefusedError())
    dns = checks.diagnose_dns_error(internal_ctx, socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    for problem in (untrusted, expired, none_yet, port80, dns):
        assert "ACME" not in problem.message and "opengram_acme_directory" not in problem.message, problem.message
    for problem in (untrusted, expired, none_yet):
        assert "Caddy's local CA" in problem.message and "opengram_tls_mode: internal" in problem.message
    assert "journalctl -u caddy | grep -i -e pki -e tls" in expired.message
    assert "/etc/hosts of ctl" in dns.message and "internal DNS" in dns.message
    # acme mode keeps its words
    acme = checks.Context("chat.internal", 443, host_label="chat-1", proxy="caddy", prober="ctl")
    assert "ACME HTTP-01" in checks.diagnose_redirect_error(acme, ConnectionRefusedError()).message
    assert "ACME issuance" in checks.diagnose_tls_error(acme, ssl.SSLError(1, "[SSL: X] x")).message


def test_unreadable_local_root_is_explained_and_the_rest_still_checked():
    port = closed_port()
    site = probe.Probe("https://127.0.0.1:%d" % port, host_label="chat-1", proxy="caddy", prober="ctl",
                       tls_mode="internal", local_root="/srv/caddy/root.crt",
                       local_root_error="file not found: /srv/caddy/root.crt")
    with pytest.raises(probe.Unverifiable) as why:
        site.trust()
    assert why.value.problem.code == "local_root_unreadable"
    assert "/srv/caddy/root.crt could not be read on chat-1 (file not found" in why.value.problem.message
    bad = probe.Probe("https://127.0.0.1:1", tls_mode="internal", ca_data="not a certificate", prober="ctl")
    with pytest.raises(probe.Unverifiable) as why:
        bad.trust()
    assert "not a PEM certificate" in why.value.problem.message


@pytest.mark.parametrize("status, location, code", [
    (308, "https://chat.example.com/api/v1/health?selfcheck=1", None),
    (301, "https://CHAT.example.com/", None),
    (301, "http://chat.example.com/", "redirect_elsewhere"),
    (302, "https://login.example.net/", "redirect_elsewhere"),
    (200, None, "redirect_missing"),
    (404, None, "redirect_missing"),
])
def test_redirect(ctx, status, location, code):
    problem = checks.diagnose_redirect(ctx, status, location)
    assert (problem.code if problem else None) == code


def test_port_80_closed(ctx):
    problem = checks.diagnose_redirect_error(ctx, ConnectionRefusedError(111, "refused"))
    assert problem.code == "port80_closed"
    assert "closed" in problem.message and "HTTP-01" in problem.message


@pytest.mark.parametrize("status", [502, 503, 504])
def test_backend_down(ctx, status):
    problem, _ = checks.diagnose_health(ctx, status, b"<html>Bad Gateway</html>")
    assert problem.code == "backend_down"
    assert "Backend down" in problem.message and "HTTP %d" % status in problem.message
    assert "systemctl status opengram" in problem.message


def test_health_answers(ctx):
    ok = json.dumps({"service": "opengram", "status": "ok", "version": "0.2.1"}).encode()
    assert checks.diagnose_health(ctx, 200, ok, "0.2.1")[0] is None
    assert checks.diagnose_health(ctx, 200, ok, "0.2.2")[0].code == "wrong_version"
    assert checks.diagnose_health(ctx, 200, b"<html>Welcome to nginx!</html>")[0].code == "not_opengram"
    assert checks.diagnose_health(ctx, 404, b"")[0].code == "not_routed"


def test_event_stream_answers(ctx):
    assert checks.diagnose_sse(ctx, 200, "text/event-stream", 0.05, 2.0) is None
    assert checks.diagnose_sse(ctx, 401, "application/json", None, 2.0).code == "sse_refused"
    assert checks.diagnose_sse(ctx, 200, "text/html", 0.05, 2.0).code == "sse_not_stream"
    held = checks.diagnose_sse(ctx, 200, "text/event-stream", None, 2.0)
    assert held.code == "sse_buffered" and "proxy_buffering off" in held.message
    no_headers = checks.diagnose_sse(ctx, None, None, None, 2.0)
    assert no_headers.code == "sse_buffered" and "not even its response headers" in no_headers.message


def test_message_lists_every_problem_and_one_line_when_ok():
    site = probe.Probe("https://chat.example.com", host_label="chat-1", prober="ctl")
    site.checks = {"dns": {"addresses": ["192.0.2.10"]}, "redirect": {"status": 308},
                   "health": {"health": {"version": "0.2.1"}}, "sse": {"first_bytes_seconds": 0.02}}
    assert site.message().startswith("OK https://chat.example.com; resolves to 192.0.2.10;")
    assert "\n" not in site.message()
    site.problems = [checks.Problem("health", "backend_down", "Backend down: ..."),
                     checks.Problem("redirect", "redirect_missing", "No HTTP -> HTTPS redirect: ...")]
    lines = site.message().splitlines()
    assert lines[0] == "https://chat.example.com (chat-1, checked from ctl): 2 problems"
    assert lines[1:] == ["1. Backend down: ...", "2. No HTTP -> HTTPS redirect: ..."]


# ---- local servers: the event stream, a 502, a missing redirect ----------------------------------

class Upstream(http.server.BaseHTTPRequestHandler):
    """Plays Opengram (or a proxy in front of it) on 127.0.0.1, as the server's `mode` says."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        mode = self.server.mode
        if self.path.startswith("/api/v1/health"):
            if mode == "down":
                return self.reply(502, b"<html>502 Bad Gateway</html>", "text/html")
            if mode == "plain":
                return self.reply(200, b"<html>hello over http</html>", "text/html")
            return self.reply(200, json.dumps({"service": "opengram", "status": "ok", "version": "0.2.1"}).encode(),
                              "application/json")
        if self.path.startswith(checks.SSE_PATH):
            # The secret comes as a Bearer header, never in the URL.
            if self.path != checks.SSE_PATH or self.headers.get("Authorization") != "Bearer og_s/ecret":
                return self.reply(401, b'{"error":{"code":"UNAUTHORIZED"}}', "application/json")
            if mode == "hold-headers":
                time.sleep(self.server.hold)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            if mode == "close":
                self.close_connection = True
                self.wfile.write(b"0\r\n\r\n")
                return None
            if mode == "buffered":
                # A buffering proxy: headers go out, the first bytes are held back.
                time.sleep(self.server.hold)
            body = b": stream opened\n\n"
            try:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(body), body))
                self.wfile.flush()
                time.sleep(0.2)
            except OSError:
                pass
            return None
        return self.reply(404, b"", "text/plain")

    def reply(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return None


@pytest.fixture
def upstream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    server.daemon_threads = True
    server.mode, server.hold = "ok", 1.5
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.connect = lambda: http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    yield server
    server.shutdown()
    server.server_close()


TOKEN = "og_s/ecret"


def test_unbuffered_stream_opens_at_once(ctx, upstream):
    problem, found = checks.check_sse(ctx, upstream.connect, TOKEN, limit=1.0)
    assert problem is None
    assert found["status"] == 200 and found["first_bytes_seconds"] < 0.5


def test_stream_whose_first_bytes_are_held_is_reported_as_buffered(ctx, upstream):
    upstream.mode = "buffered"
    started = time.monotonic()
    problem, found = checks.check_sse(ctx, upstream.connect, TOKEN, limit=0.5)
    assert time.monotonic() - started < 1.2, "the check waited for the held bytes instead of its limit"
    assert problem.code == "sse_buffered"
    assert found["status"] == 200 and found["first_bytes_seconds"] is None
    assert "its response headers arrived but" in problem.message


def test_stream_whose_headers_are_held_is_reported_as_buffered(ctx, upstream):
    upstream.mode = "hold-headers"
    problem, found = checks.check_sse(ctx, upstream.connect, TOKEN, limit=0.5)
    assert problem.code == "sse_buffered" and found["status"] is None


def test_stream_that_ends_at_once_is_reported_as_closed(ctx, upstream):
    upstream.mode = "close"
    problem, found = checks.check_sse(ctx, upstream.connect, TOKEN, limit=1.0)
    assert problem.code == "sse_closed" and found["status"] == 200


def test_stream_with_a_wrong_secret_is_refused(ctx, upstream):
    problem, found = checks.check_sse(ctx, upstream.connect, "og_wrong", limit=1.0)
    assert problem.code == "sse_refused" and found["status"] == 401


def test_502_through_the_proxy_is_backend_down(ctx, upstream):
    upstream.mode = "down"
    problem, found = checks.check_health(ctx, upstream.connect)
    assert problem.code == "backend_down" and found["status"] == 502
    upstream.mode = "ok"
    problem, found = checks.check_health(ctx, upstream.connect, "0.2.1")
    assert problem is None and found["health"]["version"] == "0.2.1"


def test_plain_http_without_redirect(ctx, upstream):
    upstream.mode = "plain"
    problem, found = checks.check_redirect(ctx, upstream.connect)
    assert problem.code == "redirect_missing" and found["status"] == 200


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_probe_of_a_closed_port_stops_after_saying_so():
    port = closed_port()
    site = probe.Probe("https://127.0.0.1:%d" % port, host_label="chat-1", proxy="caddy", prober="ctl").run()
    assert codes(site.problems) == ["port_closed"]
    assert site.checks["dns"]["addresses"] == ["127.0.0.1"]
    assert "systemctl status caddy" in site.message()


def test_missing_ca_file_is_explained():
    site = probe.Probe("https://127.0.0.1:1", ca_file="/nonexistent/ca.pem", prober="ctl").run()
    assert codes(site.problems) == ["ca_file_missing"]
    assert "opengram_selfcheck_ca_file=/nonexistent/ca.pem does not exist on ctl" in site.message()


def test_url_must_be_https():
    with pytest.raises(ValueError):
        probe.Probe("http://chat.example.com")


# ---- TLS against a local server with a self-signed certificate ---------------------------------------

@contextlib.contextmanager
def tls_listener(cert, key):
    """A TLS server on a free local port that completes handshakes with `cert`; yields the port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        listener.close()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=ogd-test.local", "-addext", "subjectAltName=DNS:ogd-test.local",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    with tls_listener(cert, key) as port:
        yield port, str(cert)


def handshake_problem(name, port, cafile):
    ctx = checks.Context(name, port, host_label="chat-1", proxy="caddy", prober="ctl")
    with pytest.raises(ssl.SSLError) as error:
        checks.tls_handshake(ctx, "127.0.0.1", ssl.create_default_context(cafile=cafile), 5)
    _, der, _ = checks.tls_handshake(ctx, "127.0.0.1", checks.unverified_context(), 5)
    served = checks.decode_der(der)
    return checks.diagnose_tls_error(ctx, error.value, served, cafile or ""), served


def test_self_signed_certificate_is_untrusted_and_named(tls_server):
    port, _ = tls_server
    problem, served = handshake_problem("ogd-test.local", port, None)
    assert checks.certificate_names(served) == ["ogd-test.local"]
    assert problem.code == "cert_untrusted"
    assert "issued by ogd-test.local" in problem.message


def test_trusted_certificate_for_another_name(tls_server):
    port, cert = tls_server
    problem, _ = handshake_problem("chat.example.com", port, cert)
    assert problem.code == "cert_wrong_name"
    assert "a certificate for ogd-test.local, not chat.example.com" in problem.message


def test_trusted_certificate_for_the_name_expiring_soon(tls_server):
    port, cert = tls_server
    ctx = checks.Context("ogd-test.local", port, proxy="caddy", prober="ctl")
    served, _, _ = checks.tls_handshake(ctx, "127.0.0.1", ssl.create_default_context(cafile=cert), 5)
    # A 2-day certificate with (almost) 2 days left: fine by its own lifetime
    # (the default demands a fifth of it), expiring when the whole lifetime is
    # demanded or when the days alone (less than its lifetime) are.
    assert checks.diagnose_expiry(ctx, served, 14) is None
    assert checks.diagnose_expiry(ctx, served, 14, min_fraction=1.0).code == "cert_expiring"
    assert checks.diagnose_expiry(ctx, served, 1, min_fraction=1.0) is None


# ---- internal mode against a local server: only the root read from the host is trusted ----------------

@pytest.fixture(scope="module")
def caddy_like_server(tmp_path_factory):
    """A TLS server whose short-lived certificate for ogd-test.local (12 hours where openssl sets the
    dates, else a day) is signed by a root of its own, as Caddy's local CA does; (port, root PEM,
    another root's PEM)."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make test certificates")
    d = tmp_path_factory.mktemp("local-ca")

    def sh(*argv):
        subprocess.run(argv, check=True, capture_output=True, cwd=d)

    for root in ("root", "other"):
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-days", "3650", "-subj", "/CN=%s Local Authority" % root, "-keyout", root + ".key", "-out", root + ".crt")
    sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
       "-subj", "/CN=ogd-test.local", "-keyout", "leaf.key", "-out", "leaf.csr")
    (d / "ext").write_text("subjectAltName=DNS:ogd-test.local\n")
    # 12 hours: openssl x509 -days counts days, so the dates are set with -not_before/-not_after when
    # available, else the leaf lives a day (still far below 14 days).
    start = time.strftime("%Y%m%d%H%M%SZ", time.gmtime(time.time() - 3600))
    end = time.strftime("%Y%m%d%H%M%SZ", time.gmtime(time.time() + 11 * 3600))
    argv = ["openssl", "x509", "-req", "-in", "leaf.csr", "-CA", "root.crt", "-CAkey", "root.key",
            "-CAcreateserial", "-extfile", "ext", "-out", "leaf.crt"]
    if subprocess.run(argv + ["-not_before", start, "-not_after", end], capture_output=True, cwd=d).returncode:
        sh(*argv, "-days", "1")
    with tls_listener(d / "leaf.crt", d / "leaf.key") as port:
        yield port, (d / "root.crt").read_text(), (d / "other.crt").read_text()


def internal_probe(port, ca_data, **extra):
    site = probe.Probe("https://ogd-test.local:%d" % port, host_label="chat-1", proxy="caddy", prober="ctl",
                       tls_mode="internal", ca_data=ca_data, **extra)
    site.ctx.name = "ogd-test.local"
    # ogd-test.local is not in DNS: the handshake alone, at 127.0.0.1.
    context = site.trust()
    cert, _, _ = checks.tls_handshake(site.ctx, "127.0.0.1", context, 5)
    return site, cert


def test_internal_mode_trusts_the_local_root_and_judges_age_by_the_lifetime(caddy_like_server):
    port, root, _ = caddy_like_server
    site, cert = internal_probe(port, root)
    assert checks.certificate_issuer(cert) == "root Local Authority"
    assert checks.diagnose_expiry(site.ctx, cert, 14) is None  # 14 days would fail it
    expiring = checks.diagnose_expiry(site.ctx, cert, 14, min_fraction=1.0)
    assert expiring.code == "cert_expiring" and "Caddy's local CA" in expiring.message


def test_internal_mode_refuses_a_certificate_from_another_root(caddy_like_server):
    port, _, other = caddy_like_server
    with pytest.raises(ssl.SSLCertVerificationError) as error:
        internal_probe(port, other)
    ctx = checks.Context("ogd-test.local", port, host_label="chat-1", proxy="caddy", prober="ctl",
                         tls_mode="internal")
    problem = checks.diagnose_tls_error(ctx, error.value, {})
    assert problem.code == "cert_untrusted" and "Caddy's local CA" in problem.message


def test_internal_mode_trusts_the_local_root_alone(caddy_like_server, tmp_path):
    port, root, other = caddy_like_server
    # Neither the probing host's CA bundle (for its other sites) nor its system
    # trust store vouch for a site of Caddy's local CA.
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(root)
    with pytest.raises(ssl.SSLCertVerificationError):
        internal_probe(port, other, ca_file=str(bundle))
    site = probe.Probe("https://ogd-test.local:%d" % port, tls_mode="internal", ca_data=root,
                       ca_file="/nonexistent/ca.pem", prober="ctl")
    assert site.trust().cert_store_stats()["x509_ca"] == 1


# ---- as Ansible runs it ---------------------------------------------------------------------------------

def test_module_reports_problems_without_failing_and_never_prints_the_token():
    payload = {"ANSIBLE_MODULE_ARGS": {"url": "https://127.0.0.1:%d" % closed_port(), "token": "og_very-secret",
                                       "host_label": "chat-1", "proxy": "nginx"}}
    proc = subprocess.run([sys.executable, "-c", RUN_MODULE, str(CHECKS), str(MODULE)], input=json.dumps(payload),
                          capture_output=True, text=True)
    result = json.loads(proc.stdout)
    assert not result.get("failed") and result["changed"] is False
    assert result["ok"] is False
    assert [p["code"] for p in result["problems"]] == ["port_closed"]
    assert result["msg"].startswith("https://127.0.0.1:")
    assert "og_very-secret" not in proc.stdout
