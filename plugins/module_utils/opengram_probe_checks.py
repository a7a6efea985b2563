"""The checks and the advice of the opengram_probe module (library/opengram_probe.py):
each diagnose_* turns what one check saw into Problems whose messages say what is
wrong and what to do; check_* and the helpers run one check against the site."""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
import ssl
import tempfile
import time
import urllib.parse

# OpenSSL's X509_V_ERR_* codes the advice distinguishes.
X509_NOT_YET_VALID = 9
X509_EXPIRED = 10
X509_HOSTNAME_MISMATCH = 62
X509_UNTRUSTED = {2, 18, 19, 20, 21, 27}
X509_REVOKED = 23

BACKEND_DOWN = {502, 503, 504}
REDIRECTS = {301, 302, 303, 307, 308}
SSE_PATH = "/api/v1/events/stream"
SSE_FIRST_BYTES = b": stream opened"
# The remaining validity a certificate must have: the lesser of a number of
# days and this share of its own lifetime (notAfter - notBefore). ACME clients
# and Caddy renew with a third of the lifetime left, so a certificate below a
# fifth missed its renewal for a while: a 90-day certificate needs 14 days
# (the days are less), a 12-hour one from Caddy's local CA 2.4 hours.
CERT_MIN_DAYS = 14
CERT_MIN_FRACTION = 0.2
# Where Debian's caddy (user caddy, HOME=/var/lib/caddy, no `storage` option)
# keeps its local CA's root: $HOME/.local/share/caddy/pki/authorities/local.
CADDY_LOCAL_ROOT = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"


class Problem:
    """One thing wrong with the site: which check found it, a stable code, and the advice."""

    def __init__(self, check, code, message):
        self.check, self.code, self.message = check, code, message

    def __repr__(self):
        return "Problem(%r, %r)" % (self.check, self.code)

    def as_dict(self):
        return {"check": self.check, "code": self.code, "message": self.message}


# ---- context for the advice ------------------------------------------------------------

class Context:
    """Names used in the advice: the site, the host behind it, the prober."""

    def __init__(self, name, port=443, host_label="", proxy="", service_name="opengram", prober="",
                 tls_mode="acme", local_root=""):
        self.name, self.port = name, port
        self.host = host_label or "the host"
        self.proxy = proxy or "the proxy"
        self.service = service_name or "opengram"
        self.prober = prober or socket.gethostname()
        # acme (or byo): a public CA's certificate; internal: Caddy's local CA,
        # whose root (local_root, a path on the host) is the trust anchor.
        self.tls_mode = tls_mode or "acme"
        self.local_root = local_root or CADDY_LOCAL_ROOT

    @property
    def internal(self):
        return self.tls_mode == "internal"

    def local_ca(self):
        """Caddy's local CA, as the advice names it (opengram_tls_mode: internal)."""
        return "Caddy's local CA (opengram_tls_mode: internal; its root is %s on %s)" % (self.local_root, self.host)

    def on_host(self, command):
        return "On %s: %s" % (self.host, command)


def _reason(exc):
    """A short text for an OS-level error, without the errno noise."""
    text = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    return str(text)


# ---- pure diagnosis: an error or an answer -> a message ------------------------------------

def diagnose_dns_error(ctx, exc):
    code = getattr(exc, "errno", None)
    if ctx.internal and not (code in (socket.EAI_AGAIN,) or "temporary failure" in str(exc).lower()):
        return Problem("dns", "dns_unresolved",
                       "DNS: %s does not resolve from %s (%s). With opengram_tls_mode: internal the name needs no "
                       "public DNS, but whoever visits must resolve it: add it to your internal DNS, or to "
                       "/etc/hosts of %s with the address of %s; or fix opengram_domain if the name is wrong."
                       % (ctx.name, ctx.prober, _reason(exc), ctx.prober, ctx.host))
    if code in (socket.EAI_AGAIN,) or "temporary failure" in str(exc).lower():
        return Problem("dns", "dns_unavailable",
                       "DNS: %s could not be resolved from %s because its DNS server did not answer (%s). "
                       "Check the resolver of %s (/etc/resolv.conf) and try again; if it persists, the "
                       "domain's name servers are unreachable." % (ctx.name, ctx.prober, _reason(exc), ctx.prober))
    return Problem("dns", "dns_unresolved",
                   "DNS: %s does not resolve from %s (%s). Create an A (and/or AAAA) record for %s pointing "
                   "at the public address of %s, or fix opengram_domain if the name is wrong."
                   % (ctx.name, ctx.prober, _reason(exc), ctx.name, ctx.host))


def diagnose_addresses(ctx, resolved, expected, strict=False):
    """None when every resolved address belongs to the host (or nothing to compare);
    else a Problem (strict) or a note (str)."""
    expected = [a for a in expected if _is_address(a)]  # names (e.g. ansible_host) say nothing here
    if not expected or not resolved:
        return None
    known = {_normal_address(a) for a in expected}
    foreign = [a for a in resolved if _normal_address(a) not in known]
    if not foreign:
        return None
    if strict:
        return Problem("dns", "dns_elsewhere",
                       "DNS: %s resolves to %s, but %s is %s (opengram_selfcheck_addresses): visitors reach "
                       "another server (an old one, a stale record, a typo). Point the A/AAAA records of %s at %s."
                       % (ctx.name, ", ".join(foreign), ctx.host, ", ".join(expected), ctx.name, ", ".join(expected)))
    return ("DNS: %s resolves to %s, which is not an address of %s's interfaces (%s). Fine if %s is behind NAT "
            "or a load balancer (then list its public addresses in opengram_selfcheck_addresses); otherwise "
            "DNS points at another server." % (ctx.name, ", ".join(foreign), ctx.host, ", ".join(expected), ctx.host))


def _is_address(value):
    try:
        ipaddress.ip_address(str(value).split("%", 1)[0])
        return True
    except ValueError:
        return False


def _normal_address(address):
    try:
        return str(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return address


def diagnose_connect_error(ctx, address, port, exc):
    where = "port %d of %s (%s)" % (port, ctx.name, address)
    if isinstance(exc, ConnectionRefusedError):
        return Problem("port", "port_closed",
                       "Port %d closed: %s refused the connection from %s, so nothing listens there or a firewall "
                       "rejects it. Is %s running? %s; `ss -tlnp | grep :%d` shows the listener."
                       % (port, where, ctx.prober, ctx.proxy, ctx.on_host("systemctl status %s" % ctx.proxy), port))
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return Problem("port", "port_filtered",
                       "Port %d filtered: %s did not answer from %s (timed out): a firewall drops the packets. "
                       "Open TCP %d on %s (nftables/ufw) and in the provider's firewall or security group."
                       % (port, where, ctx.prober, port, ctx.host))
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return Problem("port", "host_unreachable",
                       "%s is unreachable from %s (%s): no route to that address. If it is an IPv6 address and "
                       "%s has no IPv6, remove the AAAA record or test from a host with IPv6."
                       % (where, ctx.prober, _reason(exc), ctx.prober))
    return Problem("port", "port_error", "Could not connect to %s from %s: %s." % (where, ctx.prober, _reason(exc)))


def diagnose_tls_error(ctx, exc, served=None, ca_file=""):
    """exc: the ssl error of a verifying handshake; served: decoded certificate seen without verification."""
    served = served or {}
    names = ", ".join(certificate_names(served)) or "unknown names"
    issuer = certificate_issuer(served) or "an unknown issuer"
    code = getattr(exc, "verify_code", None)
    trust = ("the CA bundle %s on %s" % (ca_file, ctx.prober)) if ca_file else ("the system trust store of %s" % ctx.prober)
    if code == X509_EXPIRED:
        if ctx.internal:
            return Problem("tls", "cert_expired",
                           "Certificate expired: %s serves a certificate from %s that expired on %s. Caddy renews "
                           "its local certificates itself, with no network needed, so it is not running or cannot "
                           "write its data directory. %s." % (ctx.name, ctx.local_ca(), served.get("notAfter", "an earlier date"),
                                                              _renewal_hint(ctx)))
        return Problem("tls", "cert_expired",
                       "Certificate expired: %s serves a certificate that expired on %s; renewal is failing. %s, "
                       "and check that port 80 reaches %s from the internet (ACME HTTP-01)."
                       % (ctx.name, served.get("notAfter", "an earlier date"), _renewal_hint(ctx), ctx.host))
    if code == X509_NOT_YET_VALID:
        return Problem("tls", "cert_not_yet_valid",
                       "Certificate not yet valid (from %s): the clock of %s or of %s is wrong. Check timedatectl "
                       "on both." % (served.get("notBefore", "a later date"), ctx.host, ctx.prober))
    if code == X509_HOSTNAME_MISMATCH:
        return Problem("tls", "cert_wrong_name",
                       "Certificate for the wrong name: %s serves a certificate for %s, not %s. Either %s has no "
                       "site for %s and serves another one's certificate (check opengram_domain and the proxy's "
                       "site), or DNS of %s points at another server."
                       % (ctx.name, names, ctx.name, ctx.proxy, ctx.name, ctx.name))
    if code == X509_REVOKED:
        return Problem("tls", "cert_revoked",
                       "Certificate revoked: the certificate of %s was revoked by its CA. %s." % (ctx.name, _renewal_hint(ctx)))
    if code in X509_UNTRUSTED or isinstance(exc, ssl.SSLCertVerificationError):
        detail = getattr(exc, "verify_message", None) or _reason(exc)
        if ctx.internal:
            return Problem("tls", "cert_untrusted",
                           "Certificate not from Caddy's local CA: %s serves a certificate issued by %s, which does "
                           "not chain to the root of %s (%s). Either another server or site answers for %s (check "
                           "the name's address on %s and %s's site), or Caddy keeps its data elsewhere (a `storage` "
                           "option in the Caddyfile): then set opengram_selfcheck_local_ca_root to that storage's "
                           "pki/authorities/local/root.crt."
                           % (ctx.name, issuer, ctx.local_ca(), detail, ctx.name, ctx.prober, ctx.proxy))
        return Problem("tls", "cert_untrusted",
                       "Certificate not trusted: %s serves a certificate issued by %s, which %s does not trust "
                       "(%s). Causes: a test or staging CA (opengram_acme_directory), a self-signed certificate, "
                       "or a chain without its intermediate (serve the full chain). For a private CA, give its "
                       "root to the check with opengram_selfcheck_ca_file (a file on %s)."
                       % (ctx.name, issuer, trust, detail, ctx.prober))
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return Problem("tls", "tls_timeout",
                       "TLS handshake timed out: port %d of %s accepts connections but never completes TLS. "
                       "Something other than %s may hold the port (%s)."
                       % (ctx.port, ctx.name, ctx.proxy, ctx.on_host("ss -tlnp | grep :%d" % ctx.port)))
    text = str(exc)
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text.lower():
        return Problem("tls", "tls_plain_http",
                       "No TLS on port %d: %s answers plain HTTP there. The proxy's HTTPS site is missing "
                       "(check %s's configuration)." % (ctx.port, ctx.name, ctx.proxy))
    if ctx.internal:
        return Problem("tls", "tls_no_certificate",
                       "TLS handshake failed (%s): %s has no certificate for %s from %s yet. %s."
                       % (_reason(exc), ctx.proxy, ctx.name, ctx.local_ca(), _renewal_hint(ctx)))
    return Problem("tls", "tls_no_certificate",
                   "TLS handshake failed (%s): %s has no certificate for %s yet. The ACME issuance probably "
                   "failed: DNS of %s must point at %s and port 80 must be reachable from the internet. %s."
                   % (_reason(exc), ctx.proxy, ctx.name, ctx.name, ctx.host, _renewal_hint(ctx)))


def diagnose_local_root(ctx, error):
    """opengram_tls_mode internal: Caddy's local root could not be read on the host, or is no certificate."""
    return Problem("tls", "local_root_unreadable",
                   "Caddy's local CA root %s could not be read on %s (%s), so the certificate of %s was not "
                   "verified (opengram_tls_mode: internal). Caddy creates the root when it first serves a "
                   "`tls internal` site: is Caddy running (%s)? If the Caddyfile's global options set `storage`, "
                   "set opengram_selfcheck_local_ca_root to that storage's pki/authorities/local/root.crt."
                   % (ctx.local_root, ctx.host, error or "no certificate in it", ctx.name,
                      ctx.on_host("systemctl status caddy")))


def _renewal_hint(ctx):
    if ctx.internal:
        return "On %s, `journalctl -u caddy | grep -i -e pki -e tls` tells why" % ctx.host
    if ctx.proxy == "nginx":
        return "On %s, `certbot renew --dry-run` and /var/log/letsencrypt/letsencrypt.log tell why" % ctx.host
    if ctx.proxy == "caddy":
        return "On %s, `journalctl -u caddy | grep -i acme` tells why" % ctx.host
    return "The ACME client's log on %s tells why" % ctx.host


def expiry_threshold(served, min_days=CERT_MIN_DAYS, min_fraction=CERT_MIN_FRACTION):
    """(days of validity the certificate must have left, its lifetime in days or None): the lesser of
    min_days and min_fraction of its own lifetime (notBefore to notAfter)."""
    try:
        lifetime = (ssl.cert_time_to_seconds(served["notAfter"]) - ssl.cert_time_to_seconds(served["notBefore"])) / 86400.0
    except (KeyError, TypeError, ValueError):
        return float(min_days), None
    return min(float(min_days), lifetime * min_fraction), lifetime


def _span(days):
    """A duration for the advice: '7 days', '11 hours', '40 minutes'."""
    days = max(days, 0)
    if days >= 2:
        return "%.0f days" % days
    if days * 24 >= 1:
        return "%.0f hours" % (days * 24)
    return "%.0f minutes" % (days * 1440)


def diagnose_expiry(ctx, served, min_days=CERT_MIN_DAYS, now=None, min_fraction=CERT_MIN_FRACTION):
    """A Problem when the certificate has less validity left than expiry_threshold, else None."""
    not_after = served.get("notAfter")
    if not not_after:
        return None
    left = (ssl.cert_time_to_seconds(not_after) - (now if now is not None else time.time())) / 86400.0
    needed, lifetime = expiry_threshold(served, min_days, min_fraction)
    if left >= needed:
        return None
    by_lifetime = lifetime is not None and needed < min_days
    if ctx.internal:
        rule = ("less than %.0f%% of its %s lifetime" % (min_fraction * 100, _span(lifetime)) if by_lifetime
                else "less than %s" % _span(needed))
        return Problem("tls", "cert_expiring",
                       "Certificate expires soon: %s's certificate from %s expires on %s (in %s, %s); Caddy renews "
                       "its local certificates when a third of their lifetime is left, so its renewal is failing. %s."
                       % (ctx.name, ctx.local_ca(), not_after, _span(left), rule, _renewal_hint(ctx)))
    if by_lifetime:  # a short-lived certificate: judged by its own lifetime
        return Problem("tls", "cert_expiring",
                       "Certificate expires soon: %s's certificate expires on %s (in %s, less than %.0f%% of its %s "
                       "lifetime); ACME clients renew when a third of the lifetime is left, so renewal is failing. %s."
                       % (ctx.name, not_after, _span(left), min_fraction * 100, _span(lifetime), _renewal_hint(ctx)))
    return Problem("tls", "cert_expiring",
                   "Certificate expires soon: %s's certificate expires on %s (in %s); ACME clients renew "
                   "30 days ahead, so renewal is failing. %s." % (ctx.name, not_after, _span(left), _renewal_hint(ctx)))


def diagnose_redirect(ctx, status, location):
    """The answer to GET http://name/path -> None when it redirects to the same path over https."""
    if status in REDIRECTS:
        target = urllib.parse.urlsplit(location or "")
        if target.scheme == "https" and (target.hostname or "").lower() == ctx.name.lower():
            return None
        return Problem("redirect", "redirect_elsewhere",
                       "HTTP redirect goes to %r instead of https://%s/: visitors typing http://%s end up "
                       "elsewhere. Check %s's port 80 site." % (location, ctx.name, ctx.name, ctx.proxy))
    if 200 <= status < 300:
        return Problem("redirect", "redirect_missing",
                       "No HTTP -> HTTPS redirect: http://%s/ answers %d with content instead of redirecting to "
                       "https://, so visitors can stay on unencrypted HTTP. %s's port 80 site must redirect "
                       "(301/308)." % (ctx.name, status, ctx.proxy))
    return Problem("redirect", "redirect_missing",
                   "No HTTP -> HTTPS redirect: http://%s/ answers %d instead of a redirect to https://. "
                   "Check %s's port 80 site." % (ctx.name, status, ctx.proxy))


def diagnose_redirect_error(ctx, exc):
    if isinstance(exc, ConnectionRefusedError):
        kind = "closed (connection refused)"
    elif isinstance(exc, (socket.timeout, TimeoutError)):
        kind = "filtered (timed out)"
    else:
        kind = "unreachable (%s)" % _reason(exc)
    if ctx.internal:  # no ACME: only the redirect needs port 80
        return Problem("redirect", "port80_closed",
                       "Port 80 of %s is %s from %s: visitors typing http://%s get nothing instead of the redirect "
                       "to HTTPS. Open TCP 80 on %s (and in any firewall between)."
                       % (ctx.name, kind, ctx.prober, ctx.name, ctx.host))
    return Problem("redirect", "port80_closed",
                   "Port 80 of %s is %s from %s: visitors typing http://%s get nothing instead of the redirect "
                   "to HTTPS, and ACME HTTP-01 validation (certificate renewal) cannot reach %s. Open TCP 80 "
                   "on %s and in the provider's firewall." % (ctx.name, kind, ctx.prober, ctx.name, ctx.proxy, ctx.host))


def diagnose_health(ctx, status, body, expected_version=""):
    """The answer to GET /api/v1/health -> (Problem or None, the parsed health or None)."""
    health = None
    try:
        health = json.loads(body or b"")
    except ValueError:
        pass
    if status in BACKEND_DOWN:
        return Problem("health", "backend_down",
                       "Backend down: %s answers HTTP %d for https://%s/api/v1/health, so Opengram behind it does "
                       "not answer. %s; the reason is in `journalctl -u %s -n 50`."
                       % (ctx.proxy, status, ctx.name, ctx.on_host("systemctl status %s" % ctx.service), ctx.service)), health
    if status == 404:
        return Problem("health", "not_routed",
                       "Not Opengram: https://%s/api/v1/health answers 404, so %s does not pass this site to "
                       "Opengram (a default site, or another server behind the name)." % (ctx.name, ctx.proxy)), health
    if status != 200:
        return Problem("health", "health_status",
                       "https://%s/api/v1/health answers HTTP %d instead of 200. %s."
                       % (ctx.name, status, ctx.on_host("journalctl -u %s -n 50" % ctx.service))), health
    if not isinstance(health, dict) or health.get("status") != "ok":
        return Problem("health", "not_opengram",
                       "Not Opengram: https://%s/api/v1/health answers 200 but not Opengram's health "
                       "({\"status\": \"ok\", ...}); %s routes the site to another application."
                       % (ctx.name, ctx.proxy)), health
    if expected_version and str(health.get("version")) != str(expected_version):
        return Problem("health", "wrong_version",
                       "Wrong version: https://%s runs Opengram %s, the inventory pins %s (opengram_version). "
                       "Run site.yml for %s, then check where /opt/opengram/current points."
                       % (ctx.name, health.get("version"), expected_version, ctx.host)), health
    return None, health


def diagnose_sse(ctx, status, content_type, first_bytes_after, limit):
    """The event stream's answer -> Problem or None. first_bytes_after: seconds until
    ': stream opened' arrived, None if it did not arrive within the limit."""
    if status in BACKEND_DOWN:
        return Problem("sse", "backend_down",
                       "Event stream: HTTP %d, Opengram behind %s does not answer (see the health check)."
                       % (status, ctx.proxy))
    if status in (401, 403):
        return Problem("sse", "sse_refused",
                       "Event stream refused (HTTP %d): the instance secret the check used is not the one "
                       "Opengram runs with. opengram_instance_secret (Vault) and /etc/opengram/opengram.env on "
                       "%s must agree: run site.yml." % (status, ctx.host))
    if status is not None and status != 200:
        return Problem("sse", "sse_status", "Event stream https://%s%s answers HTTP %d instead of 200."
                       % (ctx.name, SSE_PATH, status))
    if status is not None and content_type and not content_type.lower().startswith("text/event-stream"):
        return Problem("sse", "sse_not_stream",
                       "Event stream answers %r instead of text/event-stream: %s routes %s elsewhere."
                       % (content_type, ctx.proxy, SSE_PATH))
    if first_bytes_after is None:
        held = "its response headers arrived but" if status is not None else "not even its response headers arrived, and"
        return Problem("sse", "sse_buffered",
                       "Event stream buffered: %s its first bytes (': stream opened', which Opengram sends at "
                       "once) did not arrive within %.1f s. A proxy between the client and Opengram holds the "
                       "stream, so chats update late or never. %s" % (held, limit, _buffering_hint(ctx)))
    return None


def _buffering_hint(ctx):
    if ctx.proxy == "nginx":
        return ("nginx needs `proxy_buffering off;` for %s (and no gzip there); a CDN in front must not buffer "
                "text/event-stream." % SSE_PATH)
    if ctx.proxy == "caddy":
        return ("Caddy flushes text/event-stream by itself: look for an `encode` directive or a positive "
                "`flush_interval` in the site; a CDN in front must not buffer text/event-stream.")
    return "Turn response buffering off for %s in every proxy or CDN in front." % SSE_PATH


# ---- the certificate, decoded with the standard library ---------------------------------------

def _day(not_after):
    """'Nov 27 14:14:46 2031 GMT' -> '2031-11-27'."""
    try:
        return time.strftime("%Y-%m-%d", time.gmtime(ssl.cert_time_to_seconds(not_after)))
    except (TypeError, ValueError):
        return str(not_after)


def certificate_names(cert):
    names = [v for k, v in cert.get("subjectAltName", ()) if k in ("DNS", "IP Address")]
    if not names:
        names = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
    return names


def certificate_issuer(cert):
    fields = dict(kv for rdn in cert.get("issuer", ()) for kv in rdn)
    return fields.get("commonName") or fields.get("organizationName") or ""


def decode_der(der):
    """Decode a DER certificate into ssl's dict form (getpeercert()) without verifying it."""
    if not der:
        return {}
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(ssl.DER_cert_to_PEM_cert(der))
        return ssl._ssl._test_decode_cert(path)  # pylint: disable=protected-access
    except Exception:  # noqa: BLE001 - best effort, only for the advice
        return {}
    finally:
        os.unlink(path)


# ---- the checks, on the network ---------------------------------------------------------------

def resolve(name, port):
    infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    seen = []
    for info in infos:
        address = info[4][0]
        if address not in seen:
            seen.append(address)
    return seen


def read_first_bytes(response, sock, deadline, marker=SSE_FIRST_BYTES):
    """Read the body until `marker` is seen or the deadline passes; returns the time it was seen or None."""
    data = b""
    while marker not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            chunk = response.read1(256)
        except (socket.timeout, TimeoutError):
            return None
        if not chunk:
            raise EOFError("the stream ended before %r" % marker.decode())
        data += chunk
    return time.monotonic()


def check_sse(ctx, connect, token, limit):
    """Open the event stream; returns (Problem or None, measurements)."""
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if token:
        headers["Authorization"] = "Bearer " + token
    conn = connect()
    started = time.monotonic()
    deadline = started + limit
    found = {"status": None, "content_type": None, "first_bytes_seconds": None}
    try:
        conn.connect()
        conn.sock.settimeout(max(deadline - time.monotonic(), 0.01))
        conn.request("GET", SSE_PATH, headers=headers)
        try:
            response = conn.getresponse()
        except (socket.timeout, TimeoutError):
            return diagnose_sse(ctx, None, None, None, limit), found
        found["status"] = response.status
        found["content_type"] = response.getheader("Content-Type")
        arrived = None
        if response.status == 200:
            try:
                arrived = read_first_bytes(response, conn.sock, deadline)
            except EOFError:
                return Problem("sse", "sse_closed",
                               "Event stream closed before its first bytes (': stream opened'): something between "
                               "the client and Opengram ends long-lived responses (a proxy or CDN timeout, or "
                               "another application behind %s)." % SSE_PATH), found
            if arrived is not None:
                found["first_bytes_seconds"] = round(arrived - started, 3)
        return diagnose_sse(ctx, response.status, found["content_type"], found["first_bytes_seconds"], limit), found
    finally:
        conn.close()


def check_health(ctx, connect, expected_version=""):
    conn = connect()
    try:
        conn.request("GET", "/api/v1/health", headers={"Accept": "application/json"})
        response = conn.getresponse()
        body = response.read(65536)
    finally:
        conn.close()
    problem, health = diagnose_health(ctx, response.status, body, expected_version)
    return problem, {"status": response.status, "health": health if isinstance(health, dict) else None}


def check_redirect(ctx, connect):
    """GET http://name/... (connect: a factory of the port 80 connection)."""
    conn = connect()
    try:
        conn.request("GET", "/api/v1/health?selfcheck=1")
        response = conn.getresponse()
        location = response.getheader("Location")
        response.read(4096)
    finally:
        conn.close()
    return diagnose_redirect(ctx, response.status, location), {"status": response.status, "location": location}


def tls_handshake(ctx, address, context, timeout):
    with socket.create_connection((address, ctx.port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=ctx.name) as tls:
            return tls.getpeercert(), tls.getpeercert(binary_form=True), tls.version()


def unverified_context():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
