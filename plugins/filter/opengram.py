"""Filters of the opengram role."""

from __future__ import annotations

import datetime
import hashlib
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
        head, _dot, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == name


def opengram_tls_pair_problems(certificate, key, domain, certificate_var="opengram_tls_certificate",
                               key_var="opengram_tls_certificate_key", aliases=None):
    """What is wrong with a PEM certificate (chain) and private key meant for `domain`
    and its `aliases` (opengram_domain_aliases: the nginx site serves them on it too).

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
    uncovered = [str(a) for a in (aliases if isinstance(aliases, (list, tuple)) else [])
                 if not any(_dns_name_matches(name, str(a)) for name in names)]
    if uncovered:
        problems.append(
            "%s (subject %s, DNS names %s) does not cover opengram_domain_aliases %s: browsers would refuse "
            "those names. Give a certificate whose subjectAltName includes them too, or remove them from "
            "opengram_domain_aliases." % (certificate_var, subject, ", ".join(names) or "none", uncovered))
    not_after = getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    if not_after < datetime.datetime.now(datetime.timezone.utc):
        problems.append(
            "%s (subject %s) expired on %s. Renew it and give the new certificate."
            % (certificate_var, subject, not_after.strftime("%Y-%m-%d %H:%M UTC")))
    return problems


# ---- access users, hashed for the proxies (tasks/access.yml) ---------------------
# (their checks: filter_plugins/opengram_access.py)

# bcrypt cost of the hashes computed here: every request through the password
# gate verifies one (about 50-80 ms at cost 10 on one core).
BCRYPT_COST = 10
# A bcrypt hash as the proxies take it (the preflight's rule: $2a$, $2b$ or $2y$).
_BCRYPT_HASH = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")


def opengram_access_kept(lines):
    """{name: hash} of the hash file kept on the host (tasks/access.yml), given its
    lines `name:hash`; anything else on a line (not a bcrypt hash) is ignored."""
    kept = {}
    for line in lines or []:
        name, sep, value = str(line).strip().partition(":")
        if sep and name and _BCRYPT_HASH.match(value):
            kept[name] = value
    return kept


def opengram_missing_modules(names):
    """The Python modules of `names` that the controller's Python (the one
    ansible-playbook runs in, where the filters run) cannot import."""
    import importlib.util

    return [name for name in names or [] if importlib.util.find_spec(name) is None]


def _undefined_names(value, path, found):
    """(path, name) for every undefined variable `value` refers to, however deep."""
    from collections.abc import Mapping

    from jinja2 import Undefined
    from jinja2.exceptions import UndefinedError

    try:
        if isinstance(value, Undefined):
            found.append((path, getattr(value, "_undefined_name", None)))
        elif isinstance(value, Mapping):
            for key in list(value.keys()):
                _undefined_names(value[key], "%s.%s" % (path, key), found)
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                _undefined_names(item, "%s[%d]" % (path, index), found)
    except UndefinedError as error:  # a lazy container meeting the undefined value while it is read
        found.append((path, getattr(getattr(error, "source", None), "_undefined_name", None)))


def opengram_missing_vault_vars(hosts, hostvars, prefix="vault_"):
    """[{host, variable, missing}]: each variable of each host (inventory and
    group variables) that refers to an undefined variable named `prefix`...
    (the inventory's vault file not loaded, or the name not in it). Only the
    names are read, never a value: a defined secret is not looked at. Other
    undefined names are not reported (a value may refer to a role's default,
    defined once the role runs)."""
    missing = []
    for host in hosts or []:
        values = hostvars[host]
        for name in sorted(values.keys()):
            found = []
            try:
                _undefined_names(values[name], name, found)
            except Exception:  # noqa: BLE001 - any other templating error surfaces where the value is used
                continue
            missing.extend({"host": host, "variable": path, "missing": undefined}
                           for path, undefined in found if str(undefined or "").startswith(prefix))
    return missing


def opengram_site_summary(site):
    """The lines that end a run, for one host: where the site is, who gets in
    and where their password lives, how an agent reads the instance secret,
    the backups and the alerts. `site` holds names and flags only, never a
    secret: layout (opengram_layout), access_modes, users (the login names),
    networks, tls_mode, checked (the self-check passed in this run), backup (opengram_backup_plan, {} when this run did not
    look at the backups), alerts ({command: bool, url: bool}), vault_file (the
    inventory's vault file when there is one, else '')."""
    layout = site["layout"]
    url = layout["public_base_url"] + "/"
    modes = list(site.get("access_modes") or [])
    lines = []
    if layout["proxy"] == "none":
        lines.append("Opengram %s answers on http://127.0.0.1:%s/ on the host only (opengram_proxy: none: no "
                     "proxy, no TLS, no login gate)." % (layout["version"], layout["port"]))
    else:
        tls = {"acme": "a certificate from the ACME CA", "internal": "Caddy's local CA (trust its root: "
               "docs/configuration.md)", "byo": "your certificate"}.get(site.get("tls_mode"), site.get("tls_mode"))
        lines.append("Opengram %s is at %s (behind %s, HTTPS with %s); %s."
                     % (layout["version"], url, layout["proxy"], tls,
                        "the self-check through that URL passed" if site.get("checked")
                        else "not checked through that URL by this run (check mode, or its tags)"))
    if layout["proxy"] != "none":
        if "public" in modes:
            lines.append("Who gets in: ANYONE (opengram_access_modes: [public]); see the warning above.")
        else:
            gates = []
            if "networks" in modes:
                gates.append("clients from %s" % ", ".join(site.get("networks") or []))
            if "password" in modes:
                where = ("kept in the vault %s (ansible-vault view --vault-password-file FILE %s)"
                         % (site["vault_file"], site["vault_file"]) if site.get("vault_file")
                         else "as opengram_access_users gives them in the inventory")
                gates.append("the login %s, with the password %s" % (", ".join(site.get("users") or []), where))
            lines.append("Who gets in: " + " and ".join(gates) + ".")
    lines.append("Agents: send Authorization: Bearer <instance secret> to %sapi/v1/...; read the secret on the "
                 "host with: sudo cat %s" % (url if layout["proxy"] != "none" else
                                             "http://127.0.0.1:%s/" % layout["port"], layout["secret_file"]))
    backup = site.get("backup") or {}
    if not backup:
        lines.append("Backups: not looked at by this run (its tags left the backup role out).")
    elif backup.get("timer"):
        keep = backup.get("keep")
        lines.append("Backups: %s (each at a random moment up to %s later) into %s on the host, %s%s; one now: "
                     "playbooks/backup.yml." % (backup["schedule"], backup["randomized_delay"], layout["backup_dir"],
                                                "keeping the last %s" % keep if keep else "keeping every one",
                                                ", and to the offsite restic repository" if backup.get("offsite")
                                                else ", none offsite (opengram_backup_offsite_repository)"))
    else:
        lines.append("Backups: none scheduled (opengram_backup_timer: false); playbooks/backup.yml takes one into "
                     "%s." % layout["backup_dir"])
    alerts = site.get("alerts") or {}
    ways = [w for w, on in (("the command opengram_alert_command", alerts.get("command")),
                            ("the URL opengram_alert_url", alerts.get("url"))) if on]
    lines.append("Alerts: a failed backup, certificate renewal or crash-looping Opengram goes to %s."
                 % " and ".join(ways) if ways else
                 "Alerts: none (set opengram_alert_url or opengram_alert_command to hear of a failed backup, "
                 "certificate renewal or crash-looping Opengram).")
    return lines


def _verifies(password, hashed):
    import bcrypt

    try:
        return bcrypt.checkpw(password, hashed.encode())
    except ValueError:  # not a hash bcrypt can check (or a password it cannot take)
        return False


def opengram_access_hashes(users, kept=None, cost=BCRYPT_COST):
    """[{name, hash}] for the proxies. A given password_hash is used as is. A
    password keeps the hash kept on the host for that user (`kept`: the host's
    `name:hash` lines, or {name: hash}) when that hash verifies it (bcrypt's
    own check, as community.general.htpasswd does): the same password gives
    the same hash on every run, so a converged host changes nothing. Otherwise
    (a new user, a changed password, nothing kept) it is hashed here on the
    controller with a random salt (bcrypt.gensalt): nothing about the salt
    derives from the password, the host or the name, so whoever reads a hash
    must pay bcrypt's cost for every guess."""
    import bcrypt

    kept = kept if isinstance(kept, dict) else opengram_access_kept(kept)
    result = []
    for user in users or []:
        name = str(user["name"])
        if user.get("password_hash"):
            result.append({"name": name, "hash": str(user["password_hash"])})
            continue
        password = str(user["password"]).encode()
        hashed = kept.get(name)
        if not (hashed and _verifies(password, hashed)):
            hashed = bcrypt.hashpw(password, bcrypt.gensalt(rounds=int(cost))).decode()
        result.append({"name": name, "hash": hashed})
    return result


def opengram_new_instance_secret(_ignored=None):
    """A fresh instance secret: og_ + base64url of 32 random bytes."""
    return "og_" + secrets.token_urlsafe(32)


class FilterModule:
    def filters(self):
        return {
            "opengram_env_quote": opengram_env_quote,
            "opengram_tls_pair_problems": opengram_tls_pair_problems,
            "opengram_access_hashes": opengram_access_hashes,
            "opengram_new_instance_secret": opengram_new_instance_secret,
            "opengram_missing_modules": opengram_missing_modules,
            "opengram_missing_vault_vars": opengram_missing_vault_vars,
            "opengram_site_summary": opengram_site_summary,
        }
