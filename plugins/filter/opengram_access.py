"""The access settings' checks of the preflight (roles/opengram tasks/validate.yml):
opengram_access_modes, opengram_access_users and opengram_access_networks, and
the CIDR-list check opengram_input.py uses for opengram_trusted_proxies too.
Passwords are never shown. Runs on the controller.
"""

from __future__ import annotations

import ipaddress
import re


def network_problems(networks, var, everyone_means):
    """Messages for a list of CIDR ranges; none may add up to every address."""
    problems, parsed = [], []  # parsed: (range, as written)
    if not isinstance(networks, (list, tuple)):
        return ["%s must be a list of CIDR ranges, e.g. ['192.0.2.0/24', '2001:db8::/32']" % var]
    mapped = ipaddress.ip_network("::ffff:0:0/96")
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
            problems.append("%s entry '%s' is not a CIDR range (%s)%s. Write an address range with its prefix "
                            "length, e.g. 192.0.2.0/24, 198.51.100.7/32 or 2001:db8::/48." % (var, text, exc, hint))
            continue
        parsed.append((net, text))
        # A dual-stack socket shows an IPv4 client as ::ffff:a.b.c.d: a range
        # there is an IPv4 range too.
        if net.version == 6 and net.supernet_of(mapped):
            parsed.append((ipaddress.ip_network("0.0.0.0/0"), text))
        elif net.version == 6 and net.subnet_of(mapped):
            parsed.append((ipaddress.ip_network("%s/%d" % (net.network_address.ipv4_mapped, net.prefixlen - 96)), text))
    for version, everyone in ((4, ipaddress.ip_network("0.0.0.0/0")), (6, ipaddress.ip_network("::/0"))):
        nets = [(n, text) for n, text in parsed if n.version == version]
        if nets and everyone in list(ipaddress.collapse_addresses(net for net, _text in nets)):
            problems.append("%s=%s covers every IPv%d address (%s): %s"
                            % (var, [text for _net, text in nets], version, everyone, everyone_means))
    return problems


# ---- access modes ------------------------------------------------------------------

ACCESS_MODES = ("password", "networks", "public")
BCRYPT_HASH = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
STRONG_HINT = "generate one with `openssl rand -base64 24` and keep it in Ansible Vault"
MIN_PASSWORD_LENGTH = 16
MIN_DISTINCT_CHARACTERS = 8
ACCESS_EVERYONE = ("that is public access. List only your own ranges (office, VPN, e.g. 192.0.2.0/24), or use "
                   "opengram_access_modes: [public] if you really mean everyone.")
TRUST_EVERYONE = ("then every client could name its own address in %s (the rate limit per client and the "
                  "networks mode would mean nothing). List only the ranges of your CDN or load balancer, "
                  "e.g. opengram_trusted_proxies: ['203.0.113.0/24'], or [] without one.")


def _weak_password_reason(name, password):
    """Why `password` is weak (None: strong enough)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return "it has %d characters, fewer than %d" % (len(password), MIN_PASSWORD_LENGTH)
    if len(set(password)) < MIN_DISTINCT_CHARACTERS:
        return "it has only %d distinct characters, fewer than %d" % (len(set(password)), MIN_DISTINCT_CHARACTERS)
    if name and str(name).lower() in password.lower():
        return "it contains the user name"
    return None


def _user_problems(users):
    if not isinstance(users, (list, tuple)) or not users:
        return ["opengram_access_modes contains password but opengram_access_users is empty. Add at least one "
                "user, e.g. opengram_access_users: [{name: alice, password: <from Vault>}] (%s), or [{name: "
                "alice, password_hash: '$2y$...'}] (htpasswd -nB alice)." % STRONG_HINT]
    problems, seen = [], set()
    for index, user in enumerate(users):
        where = "opengram_access_users[%d]" % index
        if not isinstance(user, dict):
            problems.append("%s must be a mapping {name, password} or {name, password_hash}." % where)
            continue
        name = str(user.get("name", "") or "")
        if not re.fullmatch(r"[A-Za-z0-9._@-]{1,64}", name):
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
                problems.append("%s.password (user '%s', value not shown) is weak: %s. Use at least %d characters "
                                "with at least %d distinct ones, not containing the user name: %s."
                                % (where, name, reason, MIN_PASSWORD_LENGTH, MIN_DISTINCT_CHARACTERS, STRONG_HINT))
        elif not BCRYPT_HASH.fullmatch(str(user["password_hash"])):
            problems.append("%s.password_hash (user '%s') is not a bcrypt hash ($2a$, $2b$ or $2y$ followed by the "
                            "cost and 53 characters): both Caddy and nginx need bcrypt. Make one with `htpasswd -nB "
                            "%s` (apache2-utils) or give the password instead (password: from Vault)."
                            % (where, name, name or "alice"))
    return problems


def opengram_access_problems(modes, users, networks, proxy="caddy"):
    """What is wrong with the access settings; passwords are never shown."""
    if proxy == "none":
        return []
    if isinstance(modes, str) or not isinstance(modes, (list, tuple)) or not modes:
        return ["opengram_access_modes=%r must be a non-empty list of modes: password, networks (combinable) "
                "or public (alone), e.g. opengram_access_modes: [password]" % (modes,)]
    problems, modes = [], [str(m) for m in modes]
    unknown = [m for m in modes if m not in ACCESS_MODES]
    if unknown:
        problems.append("opengram_access_modes=%s: unknown mode(s) %s. Use password and/or networks, or public "
                        "alone, e.g. opengram_access_modes: [password]" % (modes, unknown))
    if "public" in modes and len(set(modes)) > 1:
        problems.append("opengram_access_modes=%s: public is the explicit opt-out and cannot be combined with "
                        "other modes. Use [public] alone, or drop public." % modes)
    if "password" in modes:
        problems.extend(_user_problems(users))
    if "networks" in modes and not networks:
        problems.append("opengram_access_modes contains networks but opengram_access_networks is empty. List "
                        "the client ranges allowed in, e.g. opengram_access_networks: ['192.0.2.0/24'].")
    if networks:
        problems.extend(network_problems(networks, "opengram_access_networks", ACCESS_EVERYONE))
    return problems


class FilterModule:
    def filters(self):
        return {"opengram_access_problems": opengram_access_problems}
