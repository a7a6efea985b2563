#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Probe a public Opengram URL as a visitor would and explain what is wrong."""

from __future__ import annotations

DOCUMENTATION = r"""
module: opengram_probe
short_description: Check a public Opengram URL from outside and explain every problem
description:
  - Runs on the probing host (use C(delegate_to)) and looks at the site as a
    visitor's browser would, in order, collecting every problem instead of
    stopping at the first one.
  - "DNS (the name resolves, and to this host's addresses when they are
    given), the HTTPS port (open, closed or filtered), the certificate
    (trusted, for the name, not expired or expiring soon), the redirect of
    plain HTTP to HTTPS, C(/api/v1/health) through the proxy (a 502/503/504
    means Opengram behind the proxy is down) and the event stream (its first
    bytes C(: stream opened) must arrive within I(sse_timeout) seconds; a
    buffering proxy holds them)."
  - Never fails itself on a problem of the site; it returns C(problems) and
    a message an operator can act on (C(msg)); the caller decides. Python
    standard library only, read-only, supports check mode.
options:
  url:
    description: "Public base URL, C(https://name) or C(https://name:port)."
    type: str
    required: true
  ca_file:
    description: CA bundle on the probing host to verify the certificate with; empty for the system trust store. Not used with I(tls_mode=internal).
    type: path
    default: ""
  token:
    description: "Instance secret, sent to the event stream as C(Authorization: Bearer) (never in the URL, where proxy logs would keep it)."
    type: str
    default: ""
  expected_addresses:
    description: Addresses the name should resolve to (entries that are not IP addresses are ignored); empty skips the comparison.
    type: list
    elements: str
    default: []
  strict_addresses:
    description: A resolved address outside I(expected_addresses) is a problem; otherwise only a note.
    type: bool
    default: false
  expected_version:
    description: Version C(/api/v1/health) must report; empty skips the comparison.
    type: str
    default: ""
  host_label:
    description: Inventory name of the host behind the URL, for the advice.
    type: str
    default: ""
  proxy:
    description: The proxy in front (caddy, nginx), for the advice.
    type: str
    default: ""
  service_name:
    description: systemd unit of Opengram, for the advice.
    type: str
    default: opengram
  timeout:
    description: Seconds for each connection and request.
    type: float
    default: 10
  sse_timeout:
    description: Seconds within which the event stream's first bytes must arrive.
    type: float
    default: 2
  cert_min_days:
    description:
      - A certificate with less validity left than the lesser of this many days and I(cert_min_fraction) of
        its own lifetime is a problem (renewal is failing).
    type: int
    default: 14
  cert_min_fraction:
    description:
      - Share of the certificate's own lifetime (notAfter - notBefore) it must have left, when that is less
        than I(cert_min_days) (short-lived certificates, e.g. Caddy's local ones of 12 hours).
    type: float
    default: 0.2
  tls_mode:
    description:
      - How the site gets its certificate (opengram_tls_mode). C(internal) is Caddy's local CA, whose root
        (I(ca_data), read from the host) is then the only trust anchor (I(ca_file) and the system trust store
        are not used); the advice speaks of that CA instead of ACME. C(acme) and C(byo) are verified against
        I(ca_file) or the system trust store.
    type: str
    choices: [acme, internal, byo]
    default: acme
  ca_data:
    description:
      - PEM certificates to trust (C(tls_mode=internal) - Caddy's local CA root as read from the host).
        With I(tls_mode=internal) and no I(ca_data), the certificate cannot be verified and that is a problem.
    type: str
    default: ""
  local_root:
    description: Path of Caddy's local CA root on the host (I(tls_mode=internal)), for the advice.
    type: str
    default: ""
  local_root_error:
    description: Why the local root could not be read on the host, for the advice.
    type: str
    default: ""
author: opengram-deploy contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Probe the public URL from the controller
  opengram_deploy.opengram.opengram_probe:
    url: https://chat.example.com
    token: "{{ opengram_instance_secret }}"
    host_label: "{{ inventory_hostname }}"
  delegate_to: localhost
  register: probe
"""

RETURN = r"""
ok:
  description: True when no problem was found.
  returned: always
  type: bool
problems:
  description: "Each problem found, C({check, code, message}); check is dns, port, tls, redirect, health or sse."
  returned: always
  type: list
  elements: dict
notes:
  description: Findings that are not failures (a resolved address not on the host's interfaces).
  returned: always
  type: list
  elements: str
checks:
  description: What each check measured (addresses, certificate, statuses, timings).
  returned: always
  type: dict
msg:
  description: One line when OK, else every problem with its fix, one per line.
  returned: always
  type: str
"""

import datetime
import errno
import http.client
import os
import socket
import ssl
import time
import urllib.parse

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opengram_deploy.opengram.plugins.module_utils.opengram_probe_checks import (
    REDIRECTS, SSE_PATH, Problem, Context, _reason, diagnose_dns_error, diagnose_addresses,
    diagnose_connect_error, diagnose_tls_error, diagnose_expiry, diagnose_redirect_error, diagnose_local_root, _day,
    CERT_MIN_DAYS, CERT_MIN_FRACTION,
    certificate_names, certificate_issuer, decode_der, resolve, check_sse, check_health, check_redirect,
    tls_handshake, unverified_context,
)


class Unverifiable(Exception):
    """The certificate cannot be verified (no usable trust anchor): its Problem."""

    def __init__(self, problem):
        super().__init__(problem.message)
        self.problem = problem


class Probe:
    """Every check against one public URL; collects problems and notes."""

    def __init__(self, url, ca_file="", token="", expected_addresses=(), strict_addresses=False,
                 expected_version="", host_label="", proxy="", service_name="opengram",
                 timeout=10.0, sse_timeout=2.0, cert_min_days=CERT_MIN_DAYS, prober="",
                 cert_min_fraction=CERT_MIN_FRACTION, tls_mode="acme", ca_data="", local_root="",
                 local_root_error=""):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("url must be https://name[:port], got %r" % url)
        self.url = "https://%s" % parts.netloc
        self.ctx = Context(parts.hostname, parts.port or 443, host_label, proxy, service_name, prober,
                           tls_mode, local_root)
        self.ca_file, self.ca_data, self.token = ca_file, ca_data, token
        self.local_root_error = local_root_error
        self.cert_min_fraction = cert_min_fraction
        self.expected_addresses, self.strict_addresses = list(expected_addresses), strict_addresses
        self.expected_version = expected_version
        self.timeout, self.sse_timeout, self.cert_min_days = timeout, sse_timeout, cert_min_days
        self.problems, self.notes, self.checks = [], [], {}

    def add(self, problem):
        if problem is not None:
            self.problems.append(problem)
        return problem

    def https(self, context):
        return lambda: http.client.HTTPSConnection(self.ctx.name, self.ctx.port, timeout=self.timeout, context=context)

    def run(self):
        ctx = self.ctx
        if self.ca_file and not ctx.internal and not os.path.isfile(self.ca_file):
            self.add(Problem("tls", "ca_file_missing",
                             "opengram_selfcheck_ca_file=%s does not exist on %s: copy the CA bundle there or "
                             "empty the variable to use the system trust store." % (self.ca_file, ctx.prober)))
            return self
        # DNS
        try:
            addresses = resolve(ctx.name, ctx.port)
        except (socket.gaierror, UnicodeError) as exc:
            self.add(diagnose_dns_error(ctx, exc))
            return self
        self.checks["dns"] = {"addresses": addresses}
        elsewhere = diagnose_addresses(ctx, addresses, self.expected_addresses, self.strict_addresses)
        if isinstance(elsewhere, Problem):
            self.add(elsewhere)
        elif elsewhere:
            self.notes.append(elsewhere)
        # The HTTPS port, on every address the name has.
        reachable = []
        self.checks["port"] = {}
        for address in addresses:
            try:
                socket.create_connection((address, ctx.port), timeout=self.timeout).close()
                reachable.append(address)
                self.checks["port"][address] = "open"
            except OSError as exc:
                if exc.errno == errno.ENETUNREACH and ":" in address:
                    # The probing host has no IPv6 route: its limit, not the site's.
                    self.notes.append("%s has no route to the IPv6 address %s of %s (not checked); test from a "
                                      "host with IPv6." % (ctx.prober, address, ctx.name))
                    self.checks["port"][address] = "not_checked"
                    continue
                problem = self.add(diagnose_connect_error(ctx, address, ctx.port, exc))
                self.checks["port"][address] = problem.code
        if not reachable:
            if not self.problems:
                self.add(Problem("port", "not_checked",
                                 "%s could not reach any address of %s (%s): probe from a host that can."
                                 % (ctx.prober, ctx.name, ", ".join(addresses))))
            self.redirect()
            return self
        # The certificate: verified against ca_file / the system trust store, or
        # in internal mode against Caddy's local root read from the host.
        try:
            context = self.trust()
            cert, _der, version = tls_handshake(ctx, reachable[0], context, self.timeout)
            self.checks["tls"] = {"verified": True, "version": version, "names": certificate_names(cert),
                                  "issuer": certificate_issuer(cert), "not_after": cert.get("notAfter"),
                                  "not_before": cert.get("notBefore"), "tls_mode": ctx.tls_mode}
            self.add(diagnose_expiry(ctx, cert, self.cert_min_days, min_fraction=self.cert_min_fraction))
        except Unverifiable as why:
            self.add(why.problem)
            try:
                _cert, der, version = tls_handshake(ctx, reachable[0], unverified_context(), self.timeout)
            except (ssl.SSLError, OSError) as exc:
                self.add(diagnose_tls_error(ctx, exc, {}, self.ca_file))
                self.checks["tls"] = {"verified": False, "error": why.problem.code}
                self.redirect()
                return self
            served = decode_der(der)
            self.checks["tls"] = {"verified": False, "error": why.problem.code, "names": certificate_names(served),
                                  "issuer": certificate_issuer(served), "not_after": served.get("notAfter")}
            self.add(diagnose_expiry(ctx, served, self.cert_min_days, min_fraction=self.cert_min_fraction))
            context = unverified_context()
        except (ssl.SSLError, OSError) as exc:
            served, speaks_tls = {}, False
            try:
                _cert, der, _version = tls_handshake(ctx, reachable[0], unverified_context(), self.timeout)
                served, speaks_tls = decode_der(der), True
            except (ssl.SSLError, OSError):
                pass
            problem = self.add(diagnose_tls_error(ctx, exc, served, self.ca_file))
            self.checks["tls"] = {"verified": False, "error": problem.code, "names": certificate_names(served),
                                  "issuer": certificate_issuer(served), "not_after": served.get("notAfter")}
            if not speaks_tls:
                # No TLS at all: nothing more to learn over HTTPS.
                self.redirect()
                return self
            # Look further with the certificate unchecked: what else is wrong?
            context = unverified_context()
        self.redirect()
        # Health through the proxy.
        try:
            problem, self.checks["health"] = check_health(ctx, self.https(context), self.expected_version)
        except (OSError, http.client.HTTPException) as exc:
            problem = Problem("health", "health_error", "https://%s/api/v1/health: no answer (%s)." % (ctx.name, _reason(exc)))
        self.add(problem)
        if problem is not None and problem.code == "backend_down":
            return self  # the stream cannot work either; one explanation is enough.
        # The event stream, unbuffered.
        try:
            problem, self.checks["sse"] = check_sse(ctx, self.https(context), self.token, self.sse_timeout)
        except (OSError, http.client.HTTPException) as exc:
            problem = Problem("sse", "sse_error", "Event stream https://%s%s: no answer (%s)." % (ctx.name, SSE_PATH, _reason(exc)))
        self.add(problem)
        return self

    def trust(self):
        """The verifying context; raises Unverifiable when internal mode has no usable local root."""
        if self.ctx.internal and not self.ca_data.strip():
            raise Unverifiable(diagnose_local_root(self.ctx, self.local_root_error or "the file is empty"))
        try:
            if self.ctx.internal:  # Caddy's local root alone: no other CA may vouch for the site
                return ssl.create_default_context(cadata=self.ca_data)
            return ssl.create_default_context(cafile=self.ca_file or None, cadata=self.ca_data or None)
        except (ssl.SSLError, ValueError) as exc:
            if self.ctx.internal:
                raise Unverifiable(diagnose_local_root(self.ctx, "not a PEM certificate: %s" % _reason(exc)))
            raise Unverifiable(Problem("tls", "ca_file_invalid", "opengram_selfcheck_ca_file=%s on %s holds no usable "
                                       "CA certificate (%s)." % (self.ca_file, self.ctx.prober, _reason(exc))))

    def redirect(self):
        if self.ctx.port != 443 or "redirect" in self.checks:
            return  # a non-standard HTTPS port has no http:// twin to check
        try:
            problem, self.checks["redirect"] = check_redirect(
                self.ctx, lambda: http.client.HTTPConnection(self.ctx.name, 80, timeout=self.timeout))
        except (OSError, http.client.HTTPException) as exc:
            problem = diagnose_redirect_error(self.ctx, exc)
            self.checks["redirect"] = {"error": problem.code}
        self.add(problem)

    def message(self):
        if not self.problems:
            return "OK " + self.summary() + ("".join(" Note: " + note for note in self.notes))
        count = len(self.problems)
        lines = ["%s (%s, checked from %s): %d problem%s"
                 % (self.url, self.ctx.host, self.ctx.prober, count, "" if count == 1 else "s")]
        lines += ["%d. %s" % (index, problem.message) for index, problem in enumerate(self.problems, 1)]
        lines += ["Note: " + note for note in self.notes]
        return "\n".join(lines)

    def summary(self):
        parts = [self.url]
        dns = self.checks.get("dns", {}).get("addresses")
        if dns:
            parts.append("resolves to %s" % ", ".join(dns))
        tls = self.checks.get("tls", {})
        if tls.get("verified"):
            parts.append("certificate %svalid until %s (%s)" % ("from Caddy's local CA " if self.ctx.internal else "",
                                                                _day(tls.get("not_after")), tls.get("issuer") or "unknown issuer"))
        if self.checks.get("redirect", {}).get("status") in REDIRECTS:
            parts.append("http:// redirects")
        health = (self.checks.get("health") or {}).get("health") or {}
        if health:
            parts.append("Opengram %s healthy" % health.get("version", "?"))
        sse = self.checks.get("sse") or {}
        if sse.get("first_bytes_seconds") is not None:
            parts.append("event stream opened in %.2f s" % sse["first_bytes_seconds"])
        return "; ".join(parts) + "."

    def result(self):
        return {"ok": not self.problems, "problems": [p.as_dict() for p in self.problems], "notes": self.notes,
                "checks": self.checks, "url": self.url, "prober": self.ctx.prober, "msg": self.message()}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            ca_file=dict(type="path", default=""),
            token=dict(type="str", default="", no_log=True),
            expected_addresses=dict(type="list", elements="str", default=[]),
            strict_addresses=dict(type="bool", default=False),
            expected_version=dict(type="str", default=""),
            host_label=dict(type="str", default=""),
            proxy=dict(type="str", default=""),
            service_name=dict(type="str", default="opengram"),
            timeout=dict(type="float", default=10.0),
            sse_timeout=dict(type="float", default=2.0),
            cert_min_days=dict(type="int", default=CERT_MIN_DAYS),
            cert_min_fraction=dict(type="float", default=CERT_MIN_FRACTION),
            tls_mode=dict(type="str", default="acme", choices=["acme", "internal", "byo"]),
            ca_data=dict(type="str", default=""),
            local_root=dict(type="str", default=""),
            local_root_error=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    params = dict(module.params)
    try:
        probe = Probe(**params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    started = time.monotonic()
    probe.run()
    result = probe.result()
    result["seconds"] = round(time.monotonic() - started, 2)
    result["checked_at"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
