"""Input checks of the preflight (roles/opengram tasks/validate.yml): every variable of every
role, and the rules that span variables.

Each problem is one message that names the variable, shows the bad value
(never a secret: those are named only) and says what to write instead. The
variables of every role and their types come from the roles' own
meta/argument_specs.yml (one source of truth); formats and ranges the specs
cannot say are in RULES below. Runs on the controller.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import ipaddress
import re
from pathlib import Path


def _sibling(name):
    """Another filter plugin file of this directory, as a module."""
    spec = importlib.util.spec_from_file_location("opengram_deploy_" + name, Path(__file__).with_name(name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The access checks (opengram_access.py): the CIDR-list check serves
# opengram_trusted_proxies too.
_access = _sibling("opengram_access")
network_problems = _access.network_problems
TRUST_EVERYONE = _access.TRUST_EVERYONE
# What the host says (opengram_host.py): ports, units, the backup schedule.
_host = _sibling("opengram_host")
_whole = _host.whole

ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"
PREFIXES = ("opengram_", "caddy_", "nginx_", "certbot_", "fail2ban_")

# ---- what a deployment owns: no extra may override it -------------------------
# Environment entries templates/etc/opengram/opengram.env.j2 writes, and those
# `opengram start` or the unit set for the server itself.
OWNED_ENV = {
    "OPENGRAM_HOME": "opengram_home",
    "OPENGRAM_SERVER_PORT": "opengram_port",
    "OPENGRAM_PUBLIC_BASE_URL": "opengram_public_base_url",
    "OPENGRAM_TRUST_PROXY_HEADERS": "opengram_proxy (true behind caddy or nginx)",
    "OPENGRAM_WRITE_RATE_LIMIT_MAX": "opengram_write_rate_limit_max",
    "OPENGRAM_WRITE_RATE_LIMIT_WINDOW_MS": "opengram_write_rate_limit_window_ms",
    "OPENGRAM_INSTANCE_SECRET": "opengram_instance_secret",
    "OPENGRAM_CONFIG_PATH": "opengram_home (the config file is $OPENGRAM_HOME/opengram.config.json)",
    "OPENGRAM_DATA_ROOT": "opengram_home",
    "DATABASE_URL": "opengram_home",
    "OPENGRAM_MIGRATIONS_DIR": "opengram_version (the release's own migrations)",
    "NODE_ENV": "the service unit (production)",
}
# Keys of opengram.config.json the role owns (vars/main.yml), as dotted paths.
OWNED_CONFIG = {
    "server.port": "opengram_port",
    "server.publicBaseUrl": "opengram_public_base_url",
    "maxUploadBytes": "opengram_upload_max_bytes",
    "agents": "opengram_agents",
    "models": "opengram_models",
    "security.readEndpointsRequireInstanceSecret": "the access gate (always true)",
    "security.instanceSecret": "opengram_instance_secret",
    "security.instanceSecretEnabled": "opengram_instance_secret (always on)",
}
# Directories a path variable may not be (the role creates, chowns and, on
# uninstall, deletes its directories); with those the other roles name as
# their software's in their vars/main.yml (__<role>_system_dirs): _system_dirs().
SYSTEM_DIRS = {"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/media", "/mnt", "/opt", "/proc",
               "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/usr/bin", "/usr/lib",
               "/usr/local", "/usr/local/bin", "/usr/local/sbin", "/usr/sbin", "/usr/share", "/var/backups",
               "/var/cache", "/var/lib", "/var/log", "/var/tmp", "/var/www", "/etc/ssl", "/etc/systemd"}

SAFE_PATH = re.compile(r"^(/[A-Za-z0-9._@+-]+)+$")
URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/+-]*)?$")
NPM_NAME = re.compile(r"^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$")
DEB_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
HEADER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

REALM = (r"^[A-Za-z0-9 ._-]{1,64}$", "a realm of letters, digits, spaces, . _ or -", "Opengram")
NGINX_TIME = (r"^[0-9]+(ms|s|m|h|d)?$", "an nginx time (a number with ms, s, m, h or d)", "1h")

# name: (regex, what it must be, example). Strings that reach a config file, a
# unit or a command line: no quotes, spaces, newlines, braces or semicolons.
FORMATS = {
    "opengram_user": (r"^[a-z_][a-z0-9_-]{0,31}$", "a system user name (lower case letters, digits, _ or -)", "opengram"),
    "opengram_group": (r"^[a-z_][a-z0-9_-]{0,31}$", "a system group name (lower case letters, digits, _ or -)", "opengram"),
    "opengram_service_name": (r"^[a-z0-9][a-z0-9_-]{0,63}$", "a systemd unit name (letters, digits, _ or -, without .service)",
                              "opengram"),
    "opengram_npm_package": (NPM_NAME.pattern, "an npm package name", "'@opengramsh/opengram'"),
    "opengram_npm_registry": (r"^(|" + URL.pattern[1:-1] + r")$", "empty or the http(s):// URL of an npm registry",
                              "https://registry.npmjs.org/"),
    "opengram_acme_directory": (URL.pattern, "the https:// URL of an ACME directory",
                                "https://acme-v02.api.letsencrypt.org/directory"),
    "opengram_public_base_url": (URL.pattern, "a plain URL (scheme, host, optional port and path)",
                                 "https://chat.example.com"),
    "opengram_trusted_proxy_header": (HEADER.pattern, "an HTTP header name (letters, digits and -)", "X-Real-IP"),
    "opengram_selfcheck_from": (r"^[A-Za-z0-9._-]+$", "an inventory host name", "localhost"),
    "opengram_selfcheck_local_ca_root": (r"^(/[^/\s]+)+$", "an absolute path of a file on the Opengram host",
                                         "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"),
    "caddy_basic_auth_realm": REALM,
    "nginx_basic_auth_realm": REALM,
    "nginx_ssl_protocols": (r"^TLSv1\.[23]( TLSv1\.[23])?$", "TLSv1.2 and/or TLSv1.3 (older ones are broken)",
                            "'TLSv1.2 TLSv1.3'"),
    "nginx_ssl_ecdh_curve": (r"^[A-Za-z0-9_-]+(:[A-Za-z0-9_-]+)*$", "curve names joined by :",
                             "'X25519:prime256v1:secp384r1'"),
    "nginx_ssl_ciphers": (r"^[A-Za-z0-9_!+@=-]+(:[A-Za-z0-9_!+@=-]+)*$", "OpenSSL cipher names joined by :",
                          "the default (Mozilla intermediate)"),
    "nginx_real_ip_header": (HEADER.pattern, "an HTTP header name", "X-Real-IP"),
    "nginx_proxy_read_timeout": NGINX_TIME,
    "nginx_proxy_send_timeout": NGINX_TIME,
    "nginx_login_check_rate": (r"^[1-9][0-9]*r/[sm]$", "a rate such as 12r/m (per minute) or 1r/s", "12r/m"),
    "opengram_backup_schedule": (r"^[A-Za-z0-9*:,./~ -]{1,64}$", "a systemd calendar time (man systemd.time)",
                                 "daily"),
    "opengram_backup_randomized_delay": (r"^[0-9]+ ?(ms|s|sec|m|min|h|d)?$", "a systemd time span", "1h"),
    "opengram_backup_offsite_repository": (
        r"^((/[A-Za-z0-9._@+-]+)+|sftp:[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(/?[A-Za-z0-9._-]+)+/?)$",
        "a restic repository: an absolute path or sftp:user@host:/path", "sftp:backup@backup.example.com:/srv/restic/opengram"),
    "opengram_restore_offsite_snapshot": (r"^(latest|[0-9a-f]{8,64})$", "latest or a restic snapshot id", "latest"),
    "certbot_cert_name": (r"^[A-Za-z0-9][A-Za-z0-9.-]*$", "a certificate lineage name (letters, digits, . and -)",
                          "chat.example.com"),
}
# Variables of an earlier version: old name -> (new name, what changed).
RENAMED = {
    "nginx_auth_failure_rate": ("nginx_login_check_rate", "it now counts every password check before bcrypt runs "
                                "(a browser with a login session needs none), not failed logins after it"),
    "nginx_auth_failure_burst": ("nginx_login_check_burst", "it now counts every password check before bcrypt "
                                 "runs, not failed logins after it"),
}
# name: (lowest, highest, what it counts, example); numbers given as strings
# (-e name=value) are accepted when whole.
RANGES = {
    "opengram_health_timeout": (1, 3600, "seconds", 60),
    "opengram_selfcheck_timeout": (1, 3600, "seconds", 120),
    "opengram_selfcheck_sse_seconds": (0.1, 60, "seconds", 2),
    "opengram_selfcheck_cert_min_days": (0, 365, "days", 14),
    "opengram_selfcheck_cert_min_fraction": (0.01, 1, "(a share of the certificate's lifetime)", 0.2),
    "opengram_backup_keep": (0, 10000, "archives (0 keeps every archive)", 5),
    "opengram_releases_keep": (0, 1000, "releases (0 keeps every release)", 3),
    "opengram_nodejs_min_major": (20, 99, "a Node.js major version (Opengram needs 20 or newer)", 20),
    "opengram_nodesource_major": (20, 99, "a Node.js major version", 22),
    "opengram_backup_offsite_keep": (1, 10000, "snapshots", 14),
    "caddy_hsts_max_age": (0, 63072000, "seconds (0 turns HSTS off)", 31536000),
    "nginx_hsts_max_age": (0, 63072000, "seconds (0 turns HSTS off)", 31536000),
    "nginx_login_check_burst": (0, 1000, "password checks", 10),
    "nginx_login_session_lifetime": (60, 2592000, "seconds (1 minute to 30 days)", 43200),
    "fail2ban_login_max_retries": (1, 1000, "failed logins", 5),
    "fail2ban_login_find_time": (1, 604800, "seconds (a week at most)", 600),
    "fail2ban_login_ban_time": (1, 31536000, "seconds (a year at most)", 3600),
}
PATHS = ("opengram_home", "opengram_config_dir", "opengram_install_dir", "opengram_backup_dir",
         "nginx_acme_webroot", "certbot_webroot", "certbot_byo_dir")
# Whole numbers with messages of their own (the tests quote them).
WHOLE = {
    "opengram_upload_max_bytes": "must be a positive whole number of bytes (no unit), e.g. "
                                 "opengram_upload_max_bytes: 50000000 for 50 MB.",
    "opengram_write_rate_limit_max": "must be a positive whole number of requests (0 would refuse every write), "
                                     "e.g. opengram_write_rate_limit_max: 100",
    "opengram_write_rate_limit_window_ms": "must be a positive whole number of milliseconds, e.g. "
                                           "opengram_write_rate_limit_window_ms: 1000",
}
# opengram_serial: a number of hosts or a percentage, or a list of them.
SERIAL = re.compile(r"[1-9][0-9]{0,5}|([1-9][0-9]?|100)%")
# Facts the roles publish for the roles after them (their outputs,
# docs/architecture.md): defined in a run, never an operator's input, so
# neither checked nor reported as unknown names.
OUTPUTS = frozenset({
    "opengram_layout", "opengram_problems", "opengram_selfcheck_problems", "opengram_backup_problems",
    "opengram_selfcheck_health", "opengram_backup_archive", "opengram_backup_fetched",
    "opengram_backup_offsite_archive", "opengram_access_hashed_users", "opengram_proxy_body_max_bytes",
    "opengram_access_allowed_networks", "certbot_certificate_path", "certbot_certificate_key_path",
    "nginx_login_failure_log_path", "opengram_backup_plan",
})
BOOL_WORDS = {"true", "false", "yes", "no", "on", "off", "1", "0"}
MIN_SECRET_LENGTH = 16


# The deploy play of playbooks/opengram.yml sets some proxy role inputs from the
# opengram_* values in its `vars:`, which outrank the inventory: an inventory's
# own value of one of them would be ignored without a word, so it is refused
# (the site's names are not among them: the proxy roles' defaults derive them,
# and an inventory's value wins).
DEPLOY_PLAY = Path(__file__).resolve().parents[2] / "playbooks" / "opengram.yml"
DEPLOY_PLAY_NAME = "Deploy Opengram behind its reverse proxy"


@functools.lru_cache(maxsize=None)
def _play_set():
    """{variable: its template} of the deploy play's `vars:` ({} without the playbook)."""
    import yaml

    try:
        plays = yaml.safe_load(DEPLOY_PLAY.read_text()) or []
    except OSError:
        return {}
    for play in plays:
        if isinstance(play, dict) and play.get("name") == DEPLOY_PLAY_NAME:
            return {name: str(value) for name, value in (play.get("vars") or {}).items()}
    return {}


def _play_set_problems(values):
    problems = []
    for name, template in sorted(_play_set().items()):
        # The role's own default (a role's defaults among the values) is no inventory value.
        if name not in values or values[name] == _specs().get(name, {}).get("default"):
            continue
        shown = name if _specs().get(name, {}).get("no_log") else "%s=%r" % (name, values[name])
        sources = sorted(set(re.findall(r"\bopengram_[a-z_]+", template)) - OUTPUTS)
        problems.append("%s is set by the playbook (playbooks/opengram.yml: %s: %s), which outranks the inventory: "
                        "this value would be ignored. Remove it%s." % (
                            shown, name, template.strip(),
                            " and set %s instead" % " or ".join(sources) if sources else ""))
    return problems


@functools.lru_cache(maxsize=None)
def _system_dirs():
    """SYSTEM_DIRS and every role's __<role>_system_dirs (vars/main.yml)."""
    import yaml

    found = set(SYSTEM_DIRS)
    for path in sorted(ROLES_DIR.glob("*/vars/main.yml")):
        for key, value in (yaml.safe_load(path.read_text()) or {}).items():
            if re.fullmatch(r"__[a-z]+_system_dirs", key):
                found.update(value)
    return found


@functools.lru_cache(maxsize=None)
def _specs():
    """{variable: spec} from every role's meta/argument_specs.yml (all entry points)."""
    import yaml

    found = {}
    for path in sorted(ROLES_DIR.glob("*/meta/argument_specs.yml")):
        for entry in (yaml.safe_load(path.read_text()) or {}).get("argument_specs", {}).values():
            for name, spec in (entry.get("options") or {}).items():
                found.setdefault(name, spec or {})
    return found


def _number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        return float(str(value))
    except ValueError:
        return None


def _type_problem(name, value, spec):
    kind = spec.get("type", "str")
    shown = "%s=%r" % (name, value)
    if kind == "bool" and not (isinstance(value, bool) or str(value).lower() in BOOL_WORDS):
        return "%s is not a boolean. Write true or false, e.g. %s: %s" % (
            shown, name, str(spec.get("default", True)).lower())
    if kind == "int" and _whole(value) is None:
        return "%s is not a whole number. Write digits only, e.g. %s: %s" % (shown, name, spec.get("default", 1))
    if kind == "float" and _number(value) is None:
        return "%s is not a number, e.g. %s: %s" % (shown, name, spec.get("default", 1))
    if kind == "list" and not isinstance(value, (list, tuple)):
        return "%s is not a list. Write a YAML list, e.g. %s: [%s]" % (shown, name, "...")
    if kind == "dict" and not isinstance(value, dict):
        return "%s is not a mapping. Write a YAML mapping, e.g. %s: {KEY: value}" % (shown, name)
    if kind in ("str", "path") and isinstance(value, (list, dict)):
        return "%s is a %s, not a single value. Write one value, e.g. %s: %s" % (
            shown, type(value).__name__, name, spec.get("default", "..."))
    if kind == "list" and spec.get("elements") == "str" and any(isinstance(v, (list, dict)) for v in value):
        return "%s must be a list of plain values (no nested lists or mappings)." % shown
    if kind == "list" and spec.get("elements") == "dict" and name not in ("opengram_access_users",) \
            and any(not isinstance(v, dict) for v in value):
        return "%s must be a list of mappings, e.g. %s: [{id: ..., name: ...}]" % (shown, name)
    return None


# ---- everything else ------------------------------------------------------------------

def _flatten(mapping, prefix=""):
    for key, value in mapping.items():
        path = prefix + str(key)
        yield path
        if isinstance(value, dict):
            yield from _flatten(value, path + ".")


def _owned_problems(values):
    problems = []
    env = values.get("opengram_env_extra")
    if isinstance(env, dict):
        for key, value in env.items():
            if str(key) in OWNED_ENV:
                problems.append("opengram_env_extra sets %s, which the playbook owns (it comes from %s). Remove it "
                                "from opengram_env_extra and set %s instead."
                                % (key, OWNED_ENV[str(key)], OWNED_ENV[str(key)].split(" ")[0]))
            elif not ENV_NAME.fullmatch(str(key)):
                problems.append("opengram_env_extra key '%s' is not an environment variable name. Use letters, "
                                "digits and _, not starting with a digit, e.g. OPENAI_API_KEY." % key)
            if isinstance(value, (list, dict)) or (value is not None and re.search(r"[\r\n\x00]", str(value))):
                problems.append("opengram_env_extra.%s (value not shown: it may be a secret) must be a single-line "
                                "string or number, without line breaks." % key)
    config = values.get("opengram_config_extra")
    if isinstance(config, dict):
        for path in _flatten(config):
            if path in OWNED_CONFIG:
                problems.append("opengram_config_extra sets %s, which the playbook owns (it comes from %s). Remove "
                                "it from opengram_config_extra and set %s instead."
                                % (path, OWNED_CONFIG[path], OWNED_CONFIG[path].split(" ")[0]))
    return problems


def _path_problems(values):
    problems, given = [], {}
    for name in PATHS:
        if name not in values:
            continue
        text = str(values[name])
        if (text.rstrip("/") or "/") in _system_dirs():
            problems.append("%s='%s' is a system directory: the role creates, owns and on uninstall deletes this "
                            "directory. Give a directory of its own, e.g. %s: %s"
                            % (name, text, name, _specs().get(name, {}).get("default", "/srv/opengram")))
        elif not SAFE_PATH.fullmatch(text) or any(part in (".", "..") for part in text.split("/")):
            problems.append("%s='%s' is not a plain absolute path (letters, digits, . _ @ + - between slashes; no "
                            "spaces, quotes, '..' or trailing slash). Write e.g. %s: %s"
                            % (name, text, name, _specs().get(name, {}).get("default", "/srv/opengram")))
        elif name.startswith("opengram_"):
            given[name] = text
    names = sorted(given)
    for index, a in enumerate(names):
        for b in names[index + 1:]:
            inner = [x for x, y in ((a, b), (b, a)) if given[x] == given[y] or given[x].startswith(given[y] + "/")]
            if inner:
                problems.append("%s='%s' and %s='%s' overlap: uninstall and upgrades treat each of them as the "
                                "role's own. Give each its own directory (defaults: /var/lib/opengram, /etc/opengram, "
                                "/opt/opengram, /var/backups/opengram)." % (a, given[a], b, given[b]))
    return problems


def _entries_problems(values):
    problems = []
    for name in ("opengram_agents", "opengram_models"):
        entries = values.get(name)
        if not isinstance(entries, (list, tuple)):
            continue
        ids = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                continue
            ident = entry.get("id")
            if not isinstance(ident, str) or not ID.fullmatch(ident):
                problems.append("%s[%d].id=%r is not a usable id: 1-64 letters, digits, . _ or -, e.g. id: %s"
                                % (name, index, ident, "assistant" if name == "opengram_agents" else "default"))
            elif ident in ids:
                problems.append("%s[%d].id='%s' is listed twice: ids must be unique." % (name, index, ident))
            ids.append(ident)
            if not isinstance(entry.get("name"), str) or not entry.get("name", "").strip():
                problems.append("%s[%d] needs a name (text shown in the web UI), e.g. name: %s"
                                % (name, index, "Assistant" if name == "opengram_agents" else "Default model"))
    for name, pattern, what in (("opengram_npm_allow_scripts", NPM_NAME, "npm package names"),
                                ("opengram_build_packages", DEB_NAME, "Debian package names")):
        entries = values.get(name)
        if isinstance(entries, (list, tuple)):
            bad = [e for e in entries if not pattern.fullmatch(str(e))]
            if bad:
                problems.append("%s=%s: %s are not %s. Remove them or correct the spelling." % (
                    name, list(entries), bad, what))
    addresses = values.get("opengram_selfcheck_addresses")
    if isinstance(addresses, (list, tuple)):
        for entry in addresses:
            try:
                ipaddress.ip_address(str(entry))
            except ValueError:
                problems.append("opengram_selfcheck_addresses entry '%s' is not an IP address, e.g. 203.0.113.10"
                                % entry)
    return problems


def _serial_problems(values):
    if "opengram_serial" not in values:
        return []
    serial = values["opengram_serial"]
    entries = serial if isinstance(serial, (list, tuple)) else [serial]
    if entries and not isinstance(serial, bool) and all(
            not isinstance(e, (bool, list, dict)) and SERIAL.fullmatch(str(e)) for e in entries):
        return []
    return ["opengram_serial=%r is not a batch size: give a number of hosts (1 or more), a percentage from 1%% to "
            "100%%, or a list of them, e.g. -e opengram_serial=1 or -e opengram_serial=25%%" % (serial,)]


def _offsite_problems(values):
    repository = str(values.get("opengram_backup_offsite_repository") or "")
    if not repository:
        if values.get("opengram_restore_offsite_snapshot"):
            return ["opengram_restore_offsite_snapshot='%s' needs opengram_backup_offsite_repository (the restic "
                    "repository to restore from). Set it as for the backups." % values["opengram_restore_offsite_snapshot"]]
        return []
    problems = []
    if len(str(values.get("opengram_backup_offsite_password") or "")) < MIN_SECRET_LENGTH:
        problems.append("opengram_backup_offsite_repository is set but opengram_backup_offsite_password (value not "
                        "shown) has fewer than %d characters. Give the repository's password from Ansible Vault "
                        "(new repository: openssl rand -base64 24)." % MIN_SECRET_LENGTH)
    if repository.startswith("sftp:"):
        if not values.get("opengram_backup_offsite_sftp_key"):
            problems.append("opengram_backup_offsite_repository='%s' is SFTP but opengram_backup_offsite_sftp_key is "
                            "empty. Give the private key (from Vault) whose public half is in the repository host's "
                            "authorized_keys." % repository)
        known = str(values.get("opengram_backup_offsite_sftp_known_hosts") or "")
        lines = [line for line in known.splitlines() if line.strip() and not line.startswith("#")]
        if not lines or any(len(line.split()) < 3 for line in lines):
            problems.append("opengram_backup_offsite_sftp_known_hosts must hold the repository host's key lines "
                            "('HOST TYPE KEY', as `ssh-keyscan -t ed25519 HOST` prints them; compare the "
                            "fingerprint): host keys are checked.")
    return problems


# A DNS name as the preflight takes opengram_domain (roles/opengram tasks/validate.yml, __dns_name),
# compared without case: at least two labels of letters, digits and inner hyphens, 253 characters at most.
DNS_NAME = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+\Z")


def _alias_problems(values):
    """opengram_domain_aliases (its type: the spec's check): each a DNS name, none the
    domain itself, none twice."""
    aliases = values.get("opengram_domain_aliases")
    if not isinstance(aliases, (list, tuple)) or any(isinstance(a, (list, dict)) for a in aliases):
        return []
    shown = "opengram_domain_aliases=%s" % [str(a) for a in aliases]
    domain = str(values.get("opengram_domain") or "")
    example = "www." + (domain.lower() if DNS_NAME.match(domain.lower()) else "chat.example.com")
    problems = []
    bad = [str(a) for a in aliases if not DNS_NAME.match(str(a).lower())]
    if bad:
        problems.append("%s: %s %s. List the fully qualified names that should redirect to opengram_domain, "
                        "e.g. opengram_domain_aliases: [%s]"
                        % (shown, ", ".join("'%s'" % b for b in bad),
                           "is not a valid DNS name" if len(bad) == 1 else "are not valid DNS names", example))
    lower = [str(a).lower() for a in aliases]
    if domain and domain.lower() in lower:
        problems.append("%s lists opengram_domain='%s' itself. Remove it from opengram_domain_aliases: the site is "
                        "served under opengram_domain already, the aliases are its other names." % (shown, domain))
    twice = sorted({a for a in lower if lower.count(a) > 1})
    if twice:
        problems.append("%s lists %s more than once (names are compared without case). List each name once."
                        % (shown, ", ".join("'%s'" % t for t in twice)))
    return problems


# The login ban (roles/fail2ban): an allow list covering everyone would mean no ban at all.
BAN_EVERYONE = ("then no client is ever banned. List only your own ranges (office, VPN, e.g. 192.0.2.0/24), or "
                "set opengram_login_ban: false to turn the ban off.")


def _login_ban_problems(values):
    problems = []
    for name in ("fail2ban_login_allow_networks", "fail2ban_login_trusted_proxies"):
        if values.get(name):
            problems.extend(network_problems(values[name], name, BAN_EVERYONE))
    ban = str(values.get("opengram_login_ban", "false")).lower() in ("true", "yes", "on", "1")
    modes = values.get("opengram_access_modes")
    if ban and values.get("opengram_proxy", "caddy") != "none" and isinstance(modes, (list, tuple)) \
            and "password" not in [str(m) for m in modes]:
        problems.append("opengram_login_ban is true but opengram_access_modes=%s has no password mode: there are no "
                        "logins to count. Add password to opengram_access_modes, or set opengram_login_ban: false."
                        % list(modes))
    return problems


# opengram_alert_url: https, a host, an optional port and path; no query,
# fragment, user info, quotes or spaces (it goes into a shell-quoted settings
# file and a curl config line).
ALERT_URL = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/+-]*)?$")


def _alert_problems(values):
    """opengram_alert_command and opengram_alert_url. The URL is a secret (the
    check's key): never shown, only what is wrong with it."""
    problems = []
    command = values.get("opengram_alert_command")
    if isinstance(command, str) and command:
        if not SAFE_PATH.fullmatch(command) or any(part in (".", "..") for part in command.split("/")):
            problems.append("opengram_alert_command='%s' is not the absolute path of a program on the host (no "
                            "arguments, spaces or quotes): it is run as COMMAND HOST UNIT SUBJECT with the message on "
                            "its standard input. Put your command in a script on the host, e.g. "
                            "opengram_alert_command: /usr/local/bin/notify-admin" % command)
    url = values.get("opengram_alert_url")
    if isinstance(url, str) and url:
        scheme = url.split("://", 1)[0] + "://" if "://" in url else "no scheme"
        if not url.startswith("https://"):
            problems.append("opengram_alert_url (value not shown: it is a secret) must be an https:// URL, not %s: "
                            "the URL is the check's key and the failure message travels with it. Use the https ping "
                            "URL, e.g. opengram_alert_url: https://hc-ping.com/<uuid> (from Vault)." % scheme[:10])
        elif not ALERT_URL.fullmatch(url):
            problems.append("opengram_alert_url (value not shown: it is a secret) is not a plain https URL: only a "
                            "host, an optional port and a path of letters, digits and . _ ~ % / + -, without query, "
                            "fragment, user name, quotes or spaces, e.g. opengram_alert_url: https://hc-ping.com/<uuid>.")
    return problems


def opengram_input_problems(values, listeners=None):
    """Every problem with the variables in `values` ({name: value}: the opengram_,
    caddy_, nginx_, certbot_ and fail2ban_ variables defined for a host). `listeners`:
    {report: what validate.yml's host report printed} or its parts {sockets:
    output of `ss -Htlne`, uid: the service user's uid or '', unit: the unit
    file of opengram_service_name or '', unit_ours: yes when the role wrote
    it, alert_command: ok or missing}: a port another service uses, a unit of
    another service, an alert command that is not on the host. (Whether
    systemd takes the backup schedule: the opengram_backup role's validate.)"""
    specs, problems = _specs(), []
    for name in sorted(values):
        if name in OUTPUTS:
            continue
        if name in RENAMED:
            new, why = RENAMED[name]
            problems.append("%s was renamed %s: %s. Rename it in your inventory (default %r)."
                            % (name, new, why, specs[new].get("default")))
            continue
        if name not in specs:
            close = difflib.get_close_matches(name, list(specs), n=1, cutoff=0.85)
            if close:
                problems.append("%s is not a variable of opengram-deploy (did you mean %s?). Rename it, or it has "
                                "no effect." % (name, close[0]))
            continue
        # The port and the whole numbers of WHOLE have messages of their own.
        problem = None if name in WHOLE or name == "opengram_port" else _type_problem(name, values[name], specs[name])
        if problem and name == "opengram_alert_url":  # a secret: its value is never shown
            problem = "opengram_alert_url (value not shown: it is a secret) is not a single string. Write one URL."
        if problem:
            problems.append(problem)
            continue
        value = values[name]
        choices = specs[name].get("choices")
        if choices and value not in choices and name.startswith(("nginx_", "certbot_", "caddy_")):
            problems.append("%s=%r is not one of %s." % (name, value, choices))
        if name in FORMATS and (value != "" or name in ("opengram_public_base_url", "opengram_acme_directory")):
            pattern, what, example = FORMATS[name]
            if not re.fullmatch(pattern, str(value)):
                problems.append("%s=%r is not %s. Write e.g. %s: %s" % (name, value, what, name, example))
        if name in RANGES:
            low, high, unit, example = RANGES[name]
            number = _number(value)
            if number is None or not low <= number <= high:
                problems.append("%s=%r is out of range: use %s to %s %s, e.g. %s: %s"
                                % (name, value, low, high, unit, name, example))
        if name in WHOLE:
            number = _whole(value)
            if number is None or number < 1:
                problems.append("%s='%s' %s" % (name, value, WHOLE[name]))
    host = _host.host_report(listeners)
    problems.extend(_host.port_problems(values, host))
    problems.extend(_host.host_problems(values, host))
    problems.extend(_serial_problems(values))
    problems.extend(_path_problems(values))
    problems.extend(_owned_problems(values))
    problems.extend(_entries_problems(values))
    problems.extend(_alias_problems(values))
    problems.extend(_play_set_problems(values))
    problems.extend(_offsite_problems(values))
    problems.extend(_login_ban_problems(values))
    problems.extend(_alert_problems(values))
    if values.get("opengram_trusted_proxies"):
        problems.extend(network_problems(
            values["opengram_trusted_proxies"], "opengram_trusted_proxies",
            TRUST_EVERYONE % values.get("opengram_trusted_proxy_header", "X-Real-IP")))
    secret = values.get("opengram_instance_secret")
    if isinstance(secret, str) and secret and not re.search(r"[\r\n]", secret):
        if len(secret) < MIN_SECRET_LENGTH or re.search(r"\s", secret) or len(set(secret)) < _access.MIN_DISTINCT_CHARACTERS:
            problems.append("opengram_instance_secret (value not shown: it is a secret) is too weak or has spaces: "
                            "use at least %d characters, 8 of them different, without spaces, e.g. og_ + random base64url (python3 -c "
                            "'import secrets; print(\"og_\" + secrets.token_urlsafe(32))'), or leave it empty to "
                            "have one generated." % MIN_SECRET_LENGTH)
    return problems


class FilterModule:
    def filters(self):
        return {
            "opengram_input_problems": opengram_input_problems,
        }
