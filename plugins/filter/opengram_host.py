"""The preflight's checks of what the host itself says (tasks/validate.yml asks
it: the ports in use, the unit a service name already has, whether systemd
accepts the backup timer's schedule), with opengram_input.py's whole-number
reading. Runs on the controller; the filters are opengram_input.py's.
"""

from __future__ import annotations

import re

# Accounts of the system and of other services. Opengram runs as, owns its
# files as and (purging uninstall) removes opengram_user and opengram_group:
# never one of these.
FOREIGN_USERS = {"root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
                 "www-data", "backup", "list", "irc", "_apt", "nobody", "caddy", "sshd", "messagebus", "polkitd",
                 "systemd-network", "systemd-resolve", "systemd-timesync", "systemd-journal", "postgres", "mysql",
                 "redis", "restic", "certbot", "letsencrypt", "node", "npm"}
FOREIGN_GROUPS = FOREIGN_USERS | {"adm", "sudo", "wheel", "shadow", "disk", "docker", "staff", "users", "nogroup",
                                  "utmp", "tty", "kmem", "dialout", "ssl-cert", "systemd-journal", "lxd", "plugdev"}
# Units the role writes besides opengram_service_name.
OWN_UNITS = {"opengram-backup", "opengram-firewall"}


def whole(value):
    """The int in value (an int, or a string of digits with an optional sign), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
        return int(value)
    return None


def port_problems(values, listeners):
    port = whole(values.get("opengram_port"))
    if port is None or not 1 <= port <= 65535:
        return ["opengram_port='%s' is not a TCP port. Use a number from 1 to 65535, e.g. opengram_port: 3000"
                % values.get("opengram_port")]
    problems = []
    proxy = values.get("opengram_proxy", "caddy")
    if proxy != "none" and port in (80, 443):
        problems.append("opengram_port='%s' collides with the proxy (%s listens on 80 and 443). Use another port, "
                        "e.g. opengram_port: 3000" % (port, proxy))
    if port < 1024:
        problems.append("opengram_port='%s' is a privileged port (below 1024): Opengram runs as an unprivileged "
                        "user, and its firewall rule closes this port to every other host (with 22 it would shut "
                        "you out of SSH). Use a free port from 1024 to 65535, e.g. opengram_port: 3000" % port)
    if listeners:
        others = [line for line in str(listeners.get("sockets", "")).splitlines()
                  if _listen_port(line) == port and not _owned_by(line, listeners.get("uid"))]
        if others:
            problems.append("opengram_port='%s' is already in use on this host by another service (%s). Opengram "
                            "would not start, and its firewall rule would close that service to every other host. "
                            "Use a free port, e.g. opengram_port: %d (see `ss -tlnp` on the host)."
                            % (port, " ".join(others[0].split()[3:4]), 3000 if port != 3000 else 3001))
    return problems


def host_report(listeners):
    """{sockets, uid, unit, unit_ours, alert_command} from validate.yml's
    report (key=value lines after `ss -Htlne`'s), or as given."""
    listeners = dict(listeners or {})
    for line in str(listeners.pop("report", "")).splitlines():
        key, _eq, value = line.partition("=")
        if line.startswith("LISTEN"):
            listeners["sockets"] = listeners.get("sockets", "") + line + "\n"
        elif key in ("uid", "unit", "unit_ours", "alert_command"):
            listeners[key] = value.strip()
    return listeners


def _listen_port(line):
    fields = line.split()
    if len(fields) < 4 or fields[0] != "LISTEN":
        return None
    return whole(fields[3].rsplit(":", 1)[-1])


def _owned_by(line, uid):
    found = re.search(r"\buid:([0-9]+)", line)
    return uid not in (None, "") and found is not None and found.group(1) == str(uid).strip()


def host_problems(values, host):
    """What the host tells about names the role would write there (validate.yml
    reports it: key=value lines)."""
    problems = []
    for name, accounts, kind in (("opengram_user", FOREIGN_USERS, "user"), ("opengram_group", FOREIGN_GROUPS, "group")):
        if str(values.get(name, "")) in accounts:
            problems.append("%s='%s' is a %s of the system or of another service: Opengram runs as it, owns its files "
                            "as it and a purging uninstall removes it. Give Opengram its own, e.g. %s: opengram"
                            % (name, values[name], kind, name))
    service = str(values.get("opengram_service_name", ""))
    unit = host.get("unit", "")
    if service in OWN_UNITS:
        problems.append("opengram_service_name='%s' is the name of another unit this role writes (%s). Use e.g. "
                        "opengram_service_name: opengram" % (service, ", ".join(sorted(OWN_UNITS))))
    elif unit and host.get("unit_ours") != "yes":
        problems.append("opengram_service_name='%s' is already a unit on this host (%s) that opengram-deploy did not "
                        "write: the role would replace it. Use another name, e.g. opengram_service_name: opengram"
                        % (service, unit))
    command = str(values.get("opengram_alert_command") or "")
    if command and host.get("alert_command") == "missing":
        problems.append("opengram_alert_command='%s' is not an executable file on this host: nothing would tell "
                        "anyone about a failure. Install it there first (chmod 755), e.g. with a task before "
                        "site.yml, or set opengram_alert_command: \"\" (no command)." % command)
    return problems


class FilterModule:
    """No filters of its own: opengram_input.py loads this file."""

    def filters(self):
        return {}
