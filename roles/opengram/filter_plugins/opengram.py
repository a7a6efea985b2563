"""Filters of the opengram role."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import ipaddress
import re
import secrets


def opengram_env_quote(value):
    """Quote a value for a systemd EnvironmentFile (double quotes, C escapes)."""
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ValueError("opengram.env values cannot contain line breaks")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dns_name_matches(pattern, name):
    """RFC 6125: a wildcard stands for exactly one left-most label."""
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == name


def opengram_tls_pair_problems(certificate, key, domain, certificate_var="opengram_tls_certificate",
                               key_var="opengram_tls_certificate_key"):
    """What is wrong with a PEM certificate (chain) and private key meant for `domain`.

    Returns a list of messages (empty: usable). Each names the variable, shows
    what was found (subject, names, public key fingerprints: never key
    material) and the fix. Runs on the controller (cryptography is a
    dependency of ansible-core).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    def fingerprint(public_key):
        der = public_key.public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
        return "sha256:" + hashlib.sha256(der).hexdigest()[:16]

    problems = []
    try:
        cert = x509.load_pem_x509_certificate(str(certificate).strip().encode() + b"\n")
    except Exception:  # noqa: BLE001 - any parse error means the same to the user
        cert = None
        problems.append(
            "%s is not a PEM certificate (no parsable '-----BEGIN CERTIFICATE-----' block first). "
            "Give the certificate chain in PEM, the server certificate first." % certificate_var)
    try:
        private = serialization.load_pem_private_key(str(key).strip().encode() + b"\n", password=None)
    except TypeError:
        private = None
        problems.append(
            "%s is an encrypted private key: nginx cannot read it unattended. Give the key without a "
            "passphrase (openssl pkey -in KEY -out KEY.plain) and keep it in Ansible Vault." % key_var)
    except Exception:  # noqa: BLE001
        private = None
        problems.append(
            "%s is not a PEM private key (value not shown). Give the unencrypted PEM key "
            "('-----BEGIN PRIVATE KEY-----') that belongs to %s." % (key_var, certificate_var))
    if cert is None:
        return problems

    subject = cert.subject.rfc4514_string() or "(empty subject)"
    if private is not None and fingerprint(private.public_key()) != fingerprint(cert.public_key()):
        problems.append(
            "%s (subject %s, public key %s) and %s (public key %s) do not match: the key is not the "
            "certificate's. Give the key the certificate was issued for (compare `openssl x509 -pubkey "
            "-noout -in CERT` with `openssl pkey -pubout -in KEY`)."
            % (certificate_var, subject, fingerprint(cert.public_key()), key_var, fingerprint(private.public_key())))
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if domain and not any(_dns_name_matches(name, str(domain)) for name in names):
        problems.append(
            "%s (subject %s, DNS names %s) does not cover opengram_domain='%s': browsers would refuse it. "
            "Give a certificate whose subjectAltName includes %s."
            % (certificate_var, subject, ", ".join(names) or "none", domain, domain))
    not_after = getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    if not_after < datetime.datetime.now(datetime.timezone.utc):
        problems.append(
            "%s (subject %s) expired on %s. Renew it and give the new certificate."
            % (certificate_var, subject, not_after.strftime("%Y-%m-%d %H:%M UTC")))
    return problems


# ---- access modes (tasks/validate.yml, vars/main.yml) ---------------------------

ACCESS_MODES = ("password", "networks", "public")
BCRYPT_HASH = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
STRONG_HINT = "generate one with `openssl rand -base64 24` and keep it in Ansible Vault"
MIN_PASSWORD_LENGTH = 16
MIN_DISTINCT_CHARACTERS = 8
# bcrypt cost of the hashes computed here: every request through the password
# gate verifies one (about 50-80 ms at cost 10 on one core).
BCRYPT_COST = 10
_B64_STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_BCRYPT = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _weak_password_reason(name, password):
    """Why `password` is weak (None: strong enough)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return "it has %d characters, fewer than %d" % (len(password), MIN_PASSWORD_LENGTH)
    if len(set(password)) < MIN_DISTINCT_CHARACTERS:
        return "it has only %d distinct characters, fewer than %d" % (len(set(password)), MIN_DISTINCT_CHARACTERS)
    if name and str(name).lower() in password.lower():
        return "it contains the user name"
    return None


def _network_problems(networks):
    problems, parsed = [], []
    if not isinstance(networks, (list, tuple)):
        return ["opengram_access_networks must be a list of CIDR ranges, e.g. ['192.0.2.0/24', '2001:db8::/32']"], []
    for raw in networks:
        text = str(raw).strip()
        try:
            if "/" not in text:
                raise ValueError("no prefix length")
            net = ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            hint = ""
            try:
                hint = " (did you mean %s?)" % ipaddress.ip_network(text, strict=False)
            except ValueError:
                pass
            problems.append("opengram_access_networks entry '%s' is not a CIDR range (%s)%s. Write an address range "
                            "with its prefix length, e.g. 192.0.2.0/24, 198.51.100.7/32 or 2001:db8::/48."
                            % (text, exc, hint))
            continue
        parsed.append(net)
    for version, everyone in ((4, ipaddress.ip_network("0.0.0.0/0")), (6, ipaddress.ip_network("::/0"))):
        nets = [n for n in parsed if n.version == version]
        if nets and everyone in list(ipaddress.collapse_addresses(nets)):
            problems.append("opengram_access_networks=%s covers every %s address (%s): that is public access. "
                            "List only your own ranges (office, VPN, e.g. 192.0.2.0/24), or use "
                            "opengram_access_modes: [public] if you really mean everyone."
                            % ([str(n) for n in nets], "IPv%d" % version, everyone))
    return problems, parsed


def opengram_access_problems(modes, users, networks, proxy="caddy"):
    """What is wrong with the access settings; a list of messages naming the
    variable and the fix. Passwords are never shown."""
    problems = []
    if proxy == "none":
        return problems
    if isinstance(modes, str) or not isinstance(modes, (list, tuple)) or not modes:
        return ["opengram_access_modes=%r must be a non-empty list of modes: password, networks (combinable) "
                "or public (alone), e.g. opengram_access_modes: [password]" % (modes,)]
    modes = [str(m) for m in modes]
    unknown = [m for m in modes if m not in ACCESS_MODES]
    if unknown:
        problems.append("opengram_access_modes=%s: unknown mode(s) %s. Use password and/or networks, or public "
                        "alone, e.g. opengram_access_modes: [password]" % (modes, unknown))
    if "public" in modes and len(set(modes)) > 1:
        problems.append("opengram_access_modes=%s: public is the explicit opt-out and cannot be combined with "
                        "other modes. Use [public] alone, or drop public." % modes)
    if "password" in modes:
        if not isinstance(users, (list, tuple)) or not users:
            problems.append("opengram_access_modes contains password but opengram_access_users is empty. Add at "
                            "least one user, e.g. opengram_access_users: [{name: alice, password: "
                            "<from Vault>}] (%s), or [{name: alice, password_hash: "
                            "'$2y$...'}] (htpasswd -nB alice)." % STRONG_HINT)
        else:
            seen = set()
            for index, user in enumerate(users):
                where = "opengram_access_users[%d]" % index
                if not isinstance(user, dict):
                    problems.append("%s must be a mapping {name, password} or {name, password_hash}." % where)
                    continue
                name = str(user.get("name", "") or "")
                if not re.match(r"^[A-Za-z0-9._@-]{1,64}$", name):
                    problems.append("%s.name='%s' is not a usable user name: use 1-64 letters, digits, . _ @ or -, "
                                    "e.g. name: alice" % (where, name))
                elif name in seen:
                    problems.append("%s.name='%s' is listed twice: give each user once." % (where, name))
                seen.add(name)
                has_pw, has_hash = bool(user.get("password")), bool(user.get("password_hash"))
                if has_pw == has_hash:
                    problems.append("%s (name '%s') needs exactly one of password (from Vault) or password_hash "
                                    "(bcrypt), not %s." % (where, name, "both" if has_pw else "neither"))
                    continue
                if has_pw:
                    reason = _weak_password_reason(name, str(user["password"]))
                    if reason:
                        problems.append("%s.password (user '%s', value not shown) is weak: %s. Use at least %d "
                                        "characters with at least %d distinct ones, not containing the user name: "
                                        "%s." % (where, name, reason, MIN_PASSWORD_LENGTH, MIN_DISTINCT_CHARACTERS,
                                                 STRONG_HINT))
                elif not BCRYPT_HASH.match(str(user["password_hash"])):
                    problems.append("%s.password_hash (user '%s') is not a bcrypt hash ($2a$, $2b$ or $2y$ followed "
                                    "by the cost and 53 characters): both Caddy and nginx need bcrypt. Make one with "
                                    "`htpasswd -nB %s` (apache2-utils) or give the password instead (password: from "
                                    "Vault)." % (where, name, name or "alice"))
    network_problems, _ = _network_problems(networks if networks is not None else [])
    if "networks" in modes:
        if not networks:
            problems.append("opengram_access_modes contains networks but opengram_access_networks is empty. List "
                            "the client ranges allowed in, e.g. opengram_access_networks: ['192.0.2.0/24'].")
        problems.extend(network_problems)
    elif networks:
        problems.extend(network_problems)
    return problems


def _bcrypt_b64(data):
    return base64.b64encode(data).decode().rstrip("=").translate(str.maketrans(_B64_STD, _B64_BCRYPT))


def opengram_access_hashes(users, host):
    """[{name, hash}] for the proxies: a given bcrypt hash as is, a password
    hashed here on the controller with a salt derived (HMAC-SHA256 keyed with
    the password) from the host and user name, so the same input gives the
    same hash on every run (idempotent) and each host its own."""
    import bcrypt

    result = []
    for user in users or []:
        name = str(user["name"])
        if user.get("password_hash"):
            result.append({"name": name, "hash": str(user["password_hash"])})
            continue
        password = str(user["password"]).encode()
        digest = hmac.new(password, ("opengram-deploy|%s|%s" % (host, name)).encode(), hashlib.sha256).digest()
        salt = ("$2b$%02d$" % BCRYPT_COST + _bcrypt_b64(digest[:16])[:22]).encode()
        result.append({"name": name, "hash": bcrypt.hashpw(password, salt).decode()})
    return result


def opengram_new_instance_secret(_ignored=None):
    """A fresh instance secret: og_ + base64url of 32 random bytes."""
    return "og_" + secrets.token_urlsafe(32)


class FilterModule:
    def filters(self):
        return {
            "opengram_env_quote": opengram_env_quote,
            "opengram_tls_pair_problems": opengram_tls_pair_problems,
            "opengram_access_problems": opengram_access_problems,
            "opengram_access_hashes": opengram_access_hashes,
            "opengram_new_instance_secret": opengram_new_instance_secret,
        }
