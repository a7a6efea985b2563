#!/usr/bin/python
# -*- coding: utf-8 -*-
"""One look at the host: everything a role decides on, as data, in one module run."""

from __future__ import annotations

DOCUMENTATION = r"""
module: common_look
short_description: Read the files, directories, links, units, packages and accounts a role decides on
description:
  - A converged host should cost one round trip per role, not one module run per thing checked. A role
    calls this module once at the start of its run with every path, unit, package and account it will
    decide on, and its tasks test fields of the answer (and skip what is already right).
  - Reads only; never changes anything; runs in check mode too. What is missing is left out of each
    answer (a file that does not exist has no entry in I(files)).
options:
  files:
    description: Regular files (not links); each answers sha256, owner, group, mode (four octal digits) and mtime.
    type: list
    elements: path
    default: []
  dirs:
    description: Directories (not links); each answers owner, group, mode.
    type: list
    elements: path
    default: []
  paths:
    description: Paths whose existence is asked (anything, a dangling link too); answered in I(exists).
    type: list
    elements: path
    default: []
  links:
    description: Symbolic links; each answers its target.
    type: list
    elements: path
    default: []
  mtimes:
    description: Paths whose own modification time (seconds since the epoch, a link's own) is asked.
    type: list
    elements: path
    default: []
  reads:
    description: Text files whose content is asked (UTF-8).
    type: list
    elements: path
    default: []
  heads:
    description: Files whose first 16 bytes are asked, in hex.
    type: list
    elements: path
    default: []
  listdirs:
    description: Directories whose entries are asked; each entry answers its name and type (dir, file, link, other).
    type: list
    elements: path
    default: []
  units:
    description:
      - systemd units; each answers active (ActiveState), reload_owed (NeedDaemonReload), enabled
        (UnitFileState), loaded (LoadState) and started (the main process's start, seconds since the epoch, 0 when none).
    type: list
    elements: str
    default: []
  packages:
    description:
      - Debian packages; each answers its dpkg status (installed, config-files, ...) in I(packages) and its
        version in I(versions); unknown ones are left out.
    type: list
    elements: str
    default: []
  candidates:
    description: Debian packages whose installed and candidate versions apt would take are asked (apt-cache policy).
    type: list
    elements: str
    default: []
  offered:
    description: Debian packages whose versions the repositories offer are asked (apt-cache madison), newest first.
    type: list
    elements: str
    default: []
  conffiles:
    description: Debian packages whose conffiles are asked; answers {path, md5} per package.
    type: list
    elements: str
    default: []
  md5:
    description: Files whose md5 is asked (links followed; to compare with dpkg's record of a conffile).
    type: list
    elements: path
    default: []
  settings:
    description: "Files of C(key = value) lines (INI-like); for each, the keys asked: answers the first value of each key found."
    type: dict
    default: {}
  users:
    description: Accounts; each answers uid, gid, comment, home, shell.
    type: list
    elements: str
    default: []
  groups:
    description: Groups; each answers its gid.
    type: list
    elements: str
    default: []
  stamps:
    description:
      - Load stamps, each C({stamp, files}); answers in I(reloads) whether the service loaded the files as
        they are now (true), as recorded by M(opengram_deploy.opengram.common_reload_stamp).
    type: list
    elements: dict
    default: []
  certificates:
    description: PEM certificate files (links followed); each answers names (its DNS names) and not_after (seconds since the epoch).
    type: list
    elements: path
    default: []
  commands:
    description:
      - Read-only commands, name to argv; each answers rc, stdout and stderr (rc 127 when the program is missing).
    type: dict
    default: {}
author: opengram-deploy contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Look at the host
  opengram_deploy.opengram.common_look:
    files: [/etc/fail2ban/jail.d/opengram-login.local]
    units: [fail2ban.service]
    packages: [fail2ban]
  register: __fail2ban_look
"""

RETURN = r"""
files: {description: "path: {sha256, owner, group, mode, mtime}", returned: always, type: dict}
dirs: {description: "path: {owner, group, mode}", returned: always, type: dict}
exists: {description: The asked paths that exist., returned: always, type: list, elements: str}
links: {description: "path: target", returned: always, type: dict}
mtimes: {description: "path: seconds since the epoch", returned: always, type: dict}
contents: {description: "path: text", returned: always, type: dict}
heads: {description: "path: the first 16 bytes in hex", returned: always, type: dict}
listdirs: {description: "directory: [{name, type}]", returned: always, type: dict}
units: {description: "unit: {active, reload_owed, enabled, loaded, started}", returned: always, type: dict}
packages: {description: "package: dpkg status", returned: always, type: dict}
versions: {description: "package: version (dpkg)", returned: always, type: dict}
candidates: {description: "package: {installed, candidate} ('' for none)", returned: always, type: dict}
offered: {description: "package: [{version, source}], newest first", returned: always, type: dict}
conffiles: {description: "package: {path: md5}", returned: always, type: dict}
md5: {description: "path: md5", returned: always, type: dict}
settings: {description: "path: {key: value}", returned: always, type: dict}
users: {description: "name: {uid, gid, comment, home, shell}", returned: always, type: dict}
groups: {description: "name: gid", returned: always, type: dict}
reloads: {description: "stamp: true when the service loaded the files as they are", returned: always, type: dict}
certificates: {description: "path: {names, not_after}", returned: always, type: dict}
commands: {description: "name: {rc, stdout, stderr}", returned: always, type: dict}
"""

import datetime
import grp
import hashlib
import os
import pwd
import ssl
import stat
import subprocess

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opengram_deploy.opengram.plugins.module_utils.common_stamp import checksum, read_stamp


class LookError(Exception):
    pass


UNIT_PROPERTIES = ("Id", "ActiveState", "NeedDaemonReload", "UnitFileState", "LoadState", "ExecMainStartTimestamp")


def _digest(path, name):
    digest = hashlib.new(name)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _owner(info):
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = str(info.st_uid)
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    return owner, group


def _lstat(path):
    try:
        return os.lstat(path)
    except OSError:
        return None


def _attributes(info):
    owner, group = _owner(info)
    return {"owner": owner, "group": group, "mode": "%04o" % stat.S_IMODE(info.st_mode)}


def _run(argv):
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError:
        return {"rc": 127, "stdout": "", "stderr": "%s: not found" % argv[0]}
    return {"rc": proc.returncode, "stdout": proc.stdout.rstrip("\n"), "stderr": proc.stderr.rstrip("\n")}


def _started(value):
    """systemctl's --timestamp=us+utc value ('Mon 2026-12-07 18:05:21.123456 UTC'), in seconds since the epoch."""
    if not value or value == "n/a":
        return 0
    try:
        moment = datetime.datetime.strptime(value, "%a %Y-%m-%d %H:%M:%S.%f UTC")
    except ValueError:
        return 0
    return moment.replace(tzinfo=datetime.timezone.utc).timestamp()


def units(names):
    """One systemctl call for every unit; blocks of KEY=value lines, in the order asked."""
    if not names:
        return {}
    out = _run(["systemctl", "show", "--timestamp=us+utc"] + ["--property=" + p for p in UNIT_PROPERTIES]
               + ["--"] + list(names))
    found, blocks = {}, [b for b in out["stdout"].split("\n\n") if b.strip()] if out["rc"] == 0 else []
    for name, block in zip(names, blocks):
        values = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        found[name] = {"active": values.get("ActiveState", ""),
                       "reload_owed": values.get("NeedDaemonReload", "") == "yes",
                       "enabled": values.get("UnitFileState", ""),
                       "loaded": values.get("LoadState", ""),
                       "started": _started(values.get("ExecMainStartTimestamp", ""))}
    return found


def packages(names, field):
    if not names:
        return {}
    # One line per package; a multi-line field (Conffiles) continues on lines that start with a space.
    out = _run(["dpkg-query", "--show", "--showformat=${Package}\\t" + field + "\\n", "--"] + list(names))
    found, name = {}, None
    for line in out["stdout"].splitlines():
        if line.startswith(" ") and name is not None:
            found[name] += "\n" + line
        else:
            name, _tab, value = line.partition("\t")
            found[name] = value
    return found


def candidates(names):
    """apt-cache policy, per package: the installed version and the candidate ('' for none)."""
    if not names:
        return {}
    out = _run(["apt-cache", "policy", "--"] + list(names))
    found, name = {}, None
    for line in out["stdout"].splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            name = line[:-1]
            found[name] = {"installed": "", "candidate": ""}
            continue
        key, sep, value = line.strip().partition(": ")
        if name is not None and sep and key in ("Installed", "Candidate"):
            found[name][key.lower()] = "" if value == "(none)" else value
    return found


def offered(names):
    """apt-cache madison, per package: [{version, source}] as apt lists them (newest first)."""
    found = {name: [] for name in names}
    if not names:
        return found
    out = _run(["apt-cache", "madison", "--"] + list(names))
    for line in out["stdout"].splitlines():
        fields = [field.strip() for field in line.split("|")]
        if len(fields) == 3 and fields[0] in found:
            found[fields[0]].append({"version": fields[1], "source": fields[2]})
    return found


def conffiles(names):
    found = {}
    for name, text in packages(names, "${Conffiles}").items():
        entries = {}
        for line in text.splitlines():
            fields = line.split()
            if len(fields) >= 2:
                entries[fields[0]] = fields[1]
        found[name] = entries
    return found


def settings(files):
    found = {}
    for path, keys in (files or {}).items():
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()
        except OSError:
            continue
        values = {}
        for line in lines:
            key, sep, value = line.partition("=")
            key = key.strip()
            if sep and key in keys and key not in values and not line[:1].isspace():
                values[key] = value.strip()
        found[path] = values
    return found


def certificates(paths):
    """The DNS names and the end of validity of each certificate (the first in its PEM file)."""
    found = {}
    for path in paths:
        if not os.path.isfile(path):
            continue
        try:
            # CPython's own decoder of a PEM file (OpenSSL), as its ssl tests use it: no
            # third-party library on the host.
            info = ssl._ssl._test_decode_cert(path)  # pylint: disable=protected-access
            not_after = ssl.cert_time_to_seconds(info["notAfter"])
        except (ssl.SSLError, OSError, KeyError, ValueError):
            continue
        found[path] = {"names": [value for kind, value in info.get("subjectAltName", ()) if kind == "DNS"],
                       "not_after": not_after}
    return found


def look(params):
    result = {"files": {}, "dirs": {}, "exists": [], "links": {}, "mtimes": {}, "contents": {}, "heads": {},
              "listdirs": {}, "md5": {}}
    for path in params["files"]:
        info = _lstat(path)
        if info is not None and stat.S_ISREG(info.st_mode):
            result["files"][path] = dict(_attributes(info), sha256=_digest(path, "sha256"), mtime=info.st_mtime)
    for path in params["dirs"]:
        info = _lstat(path)
        if info is not None and stat.S_ISDIR(info.st_mode):
            result["dirs"][path] = _attributes(info)
    result["exists"] = [path for path in params["paths"] if _lstat(path) is not None]
    for path in params["links"]:
        info = _lstat(path)
        if info is not None and stat.S_ISLNK(info.st_mode):
            result["links"][path] = os.readlink(path)
    for path in params["mtimes"]:
        info = _lstat(path)
        if info is not None:
            result["mtimes"][path] = info.st_mtime
    for path in params["reads"]:
        info = _lstat(path)
        if info is not None and stat.S_ISREG(info.st_mode):
            with open(path, "rb") as handle:
                data = handle.read()
            try:
                result["contents"][path] = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise LookError("%s is not UTF-8 text (%s): nothing was changed; convert it to UTF-8, "
                                "then run again" % (path, exc))
    for path in params["heads"]:
        info = _lstat(path)
        if info is not None and stat.S_ISREG(info.st_mode):
            with open(path, "rb") as handle:
                result["heads"][path] = handle.read(16).hex()
    for path in params["md5"]:
        if os.path.isfile(path):  # a link followed: the file it names
            result["md5"][path] = _digest(path, "md5")
    for path in params["listdirs"]:
        try:
            names = sorted(os.listdir(path))
        except OSError:
            continue
        entries = []
        for name in names:
            mode = os.lstat(os.path.join(path, name)).st_mode
            kind = ("link" if stat.S_ISLNK(mode) else "dir" if stat.S_ISDIR(mode)
                    else "file" if stat.S_ISREG(mode) else "other")
            entries.append({"name": name, "type": kind})
        result["listdirs"][path] = entries
    result["units"] = units(params["units"])
    status = packages(params["packages"], "${db:Status-Status}\\t${Version}")
    result["packages"] = {name: value.partition("\t")[0] for name, value in status.items()}
    result["versions"] = {name: value.partition("\t")[2] for name, value in status.items()
                          if value.partition("\t")[0] == "installed"}
    result["candidates"] = candidates(params["candidates"])
    result["offered"] = offered(params["offered"])
    result["conffiles"] = conffiles(params["conffiles"])
    result["settings"] = settings(params["settings"])
    result["users"] = {}
    for name in params["users"]:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        result["users"][name] = {"uid": entry.pw_uid, "gid": entry.pw_gid, "comment": entry.pw_gecos,
                                 "home": entry.pw_dir, "shell": entry.pw_shell}
    result["groups"] = {}
    for name in params["groups"]:
        try:
            result["groups"][name] = grp.getgrnam(name).gr_gid
        except KeyError:
            continue
    result["reloads"] = {entry["stamp"]: read_stamp(entry["stamp"]) == checksum(entry.get("files") or [])
                         for entry in params["stamps"]}
    result["certificates"] = certificates(params["certificates"])
    result["commands"] = {name: _run([str(arg) for arg in argv]) for name, argv in (params["commands"] or {}).items()}
    return result


def main():
    lists = ("files", "dirs", "paths", "links", "mtimes", "reads", "heads", "listdirs", "md5", "certificates")
    spec = {name: {"type": "list", "elements": "path", "default": []} for name in lists}
    spec.update({name: {"type": "list", "elements": "str", "default": []}
                 for name in ("units", "packages", "candidates", "offered", "conffiles", "users", "groups")})
    spec.update(stamps={"type": "list", "elements": "dict", "default": []},
                settings={"type": "dict", "default": {}}, commands={"type": "dict", "default": {}})
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    try:
        found = look(module.params)
    except LookError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **found)


if __name__ == "__main__":
    main()
