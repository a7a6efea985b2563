#!/usr/bin/python
# -*- coding: utf-8 -*-
"""The releases under <install_dir>/releases: which one a rollback returns to, which are pruned."""

from __future__ import annotations

DOCUMENTATION = r"""
module: opengram_releases
short_description: Find the rollback target and the releases beyond the kept number
description:
  - Reads (never changes) the releases under I(install_dir)/releases, the live
    one (where I(install_dir)/current points) and the backup archives in
    I(backup_dir).
  - The rollback target is the release that ran before the live one. It is
    known from the backup the switch took (roles/opengram_backup tasks/before_switch.yml); the newest
    archive taken at or before the moment C(current) last changed, and not
    before the live release was installed, whose backup.json says
    C(before the switch to <live version>). Its version is the previous
    release; the archive holds the data as it was right before the switch.
  - When there is no such archive, or the previous release is gone, or the
    live release itself came from a rollback, I(problem) says so and what to
    do instead.
  - I(prune) lists the releases beyond I(keep) (the highest versions are
    kept), never the live one nor the rollback target. With I(keep) 0 every
    release is kept.
options:
  install_dir:
    description: opengram_install_dir.
    type: path
    required: true
  backup_dir:
    description: opengram_backup_dir.
    type: path
    required: true
  package:
    description: The npm package (a complete release has its package.json).
    type: str
    required: true
  keep:
    description: How many releases to keep (0 keeps every release).
    type: int
    default: 0
  name_pattern:
    description:
      - Regular expression of the archive names /usr/local/sbin/opengram-backup writes
        (<UTC timestamp>-<version>.tar.gz). The default is that name; the one place it is written down.
    type: str
    default: '^[0-9]{8}T[0-9]{6}Z-[0-9A-Za-z.+_-]+\.tar\.gz$'
  read_manifest:
    description:
      - Read the candidate archive's backup.json to tell why it was taken (needed for a rollback).
      - Without it, the release named by the archive is only kept from pruning when pruning would
        otherwise remove it (the manifest is read then, and only then).
    type: bool
    default: false
  host:
    description: The inventory name of the host, for the commands a problem suggests.
    type: str
    default: HOST
author: opengram-deploy contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Plan the rollback
  opengram_deploy.opengram.opengram_releases:
    install_dir: /opt/opengram
    backup_dir: /var/backups/opengram
    package: "@opengramsh/opengram"
    read_manifest: true
  register: plan
"""

RETURN = r"""
live:
  description: Version of the live release ('' when none).
  returned: always
  type: str
switched_at:
  description: When current last changed (UTC, ISO 8601; '' when none).
  returned: always
  type: str
releases:
  description: Versions under releases/, highest first.
  returned: always
  type: list
  elements: str
target:
  description: "The rollback target: version, archive (path), taken (UTC), reason; {} when none."
  returned: always
  type: dict
problem:
  description: Why there is nothing to roll back to and what to do ('' when a rollback is possible).
  returned: always
  type: str
prune:
  description: Paths of the releases beyond keep.
  returned: always
  type: list
  elements: str
"""

import datetime
import os
import re
import tarfile

from ansible.module_utils.basic import AnsibleModule

# roles/opengram_backup tasks/before_switch.yml records this reason in the backup it takes before the
# switch; its tasks/rollback.yml records ROLLBACK_REASON in the one it takes of
# the data it sets aside.
SWITCH_REASON = "before the switch to "
ROLLBACK_REASON = "before the rollback from "
STAMP = "%Y%m%dT%H%M%SZ"
SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


def version_key(name):
    """Sort key of a release name: semantic versions in their order (a
    pre-release before its release), anything else before them."""
    match = SEMVER.match(name)
    if not match:
        return (0, (), (), name)
    major, minor, patch, pre = match.groups()
    if pre is None:
        pre_key = (1,)
    else:
        pre_key = (0,) + tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (1, (int(major), int(minor), int(patch)), pre_key, name)


# A release directory is named <version>+<id> (filter_plugins/opengram_release.py);
# older ones are named by the version alone.
RELEASE_NAME = re.compile(r"^(.+)[+.][0-9a-f]{12}$")


def version_of(name):
    """The package version a release directory's name stands for (what opengram_version takes)."""
    match = RELEASE_NAME.match(name)
    return match.group(1) if match else name


def archive_time(name):
    """Seconds since the epoch of an archive name <UTC timestamp>-<version>.tar.gz."""
    stamp = datetime.datetime.strptime(name[:16], STAMP).replace(tzinfo=datetime.timezone.utc)
    return int(stamp.timestamp())


def archive_version(name):
    return name[17:-len(".tar.gz")]


def utc(seconds):
    return datetime.datetime.fromtimestamp(int(seconds), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_manifest(path):
    """backup.json of an archive, or {} when it has none (or cannot be read)."""
    import json

    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if member.name in ("./backup.json", "backup.json") and member.isfile():
                    return json.loads(tar.extractfile(member).read().decode("utf-8"))
    except (OSError, tarfile.TarError, ValueError):
        return {}
    return {}


def releases_in(install_dir, package):
    """{version: (path, complete)} of the release directories (a .partial one is an install in progress)."""
    found = {}
    root = os.path.join(install_dir, "releases")
    try:
        names = os.listdir(root)
    except OSError:
        return found
    for name in names:
        path = os.path.join(root, name)
        if name.endswith(".partial") or os.path.islink(path) or not os.path.isdir(path):
            continue
        manifest = os.path.join(path, "lib", "node_modules", *package.split("/"), "package.json")
        found[name] = (path, os.path.isfile(manifest))
    return found


# The names of the archives opengram-backup writes: <UTC timestamp>-<version>.tar.gz.
ARCHIVE_NAME_PATTERN = r"^[0-9]{8}T[0-9]{6}Z-[0-9A-Za-z.+_-]+\.tar\.gz$"


def plan(install_dir, backup_dir, package, keep, name_pattern, want_manifest, host="HOST"):
    """What the module returns (see RETURN); `host` is named in the commands of a problem."""
    result = _plan(install_dir, backup_dir, package, keep, name_pattern, want_manifest)
    result["problem"] = result["problem"].replace("{host}", host)
    return result


def _plan(install_dir, backup_dir, package, keep, name_pattern, want_manifest):
    result = {"live": "", "switched_at": "", "releases": [], "target": {}, "problem": "", "prune": []}
    releases = releases_in(install_dir, package)
    result["releases"] = sorted(releases, key=version_key, reverse=True)
    current = os.path.join(install_dir, "current")
    releases_dir = os.path.join(install_dir, "releases")

    if not os.path.islink(current):
        result["problem"] = (
            "no release is live: %s is not a link to a release. Nothing to roll back; "
            "install Opengram with site.yml first." % current)
        return result
    live = os.path.basename(os.readlink(current).rstrip("/"))
    result["live"] = live
    switched = int(os.lstat(current).st_mtime)
    result["switched_at"] = utc(switched)
    if live not in releases:
        result["problem"] = (
            "%s points at %s, which is not a release under %s. Run site.yml to put the release "
            "opengram_version names back in place." % (current, os.readlink(current), releases_dir))
        return result
    installed = int(os.stat(releases[live][0]).st_mtime)

    # The backup the switch to the live release took: the newest archive
    # taken at or before the switch, not before the live release existed.
    pattern = re.compile(name_pattern)
    try:
        names = sorted(n for n in os.listdir(backup_dir) if pattern.match(n))
    except OSError:
        names = []
    before = [n for n in names if archive_time(n) <= switched]
    candidate = before[-1] if before and archive_time(before[-1]) >= installed else ""

    manifest_cache = {}

    def manifest():
        if candidate and candidate not in manifest_cache:
            manifest_cache[candidate] = read_manifest(os.path.join(backup_dir, candidate))
        return manifest_cache.get(candidate, {})

    def target_version():
        reason = str(manifest().get("reason", ""))
        return str(manifest().get("version", "")) if reason == SWITCH_REASON + live else ""

    # Pruning: the highest versions are kept, the live one and the rollback
    # target always (the archive's name tells its version; its manifest is
    # read only when that release would otherwise go).
    if keep > 0:
        keep_set = {live}
        named = archive_version(candidate) if candidate else ""
        if named in releases and named != live:
            others = [v for v in result["releases"] if v != live]
            if named not in others[:max(keep - 1, 0)] and target_version() == named:
                keep_set.add(named)
        for version in result["releases"]:
            if len(keep_set) >= keep:
                break
            keep_set.add(version)
        result["prune"] = [releases[v][0] for v in result["releases"] if v not in keep_set]

    if not want_manifest:
        return result

    others = [v for v in result["releases"] if v != live]
    listing = ", ".join(result["releases"])
    if not candidate:
        if not others:
            result["problem"] = (
                "%s is the only release under %s: there is no previous release to roll back to "
                "(a rollback returns to the release that ran before the last switch of %s)."
                % (live, releases_dir, current))
        else:
            result["problem"] = (
                "no backup taken when %s went live (%s) is in %s, so the data of the release before it "
                "is not known (it was never taken: opengram_backup_before_upgrade=false or a first "
                "install, or it was removed: opengram_backup_keep). Releases here: %s. To run another "
                "release anyway, on the data %s has now: ansible-playbook site.yml --limit {host} "
                "-e opengram_version=VERSION (a release may not read data a newer one migrated); or "
                "restore an archive you have with playbooks/restore.yml after that."
                % (live, result["switched_at"], backup_dir, listing, live))
        return result

    data = manifest()
    reason = str(data.get("reason", ""))
    archive = os.path.join(backup_dir, candidate)
    taken = utc(archive_time(candidate))
    if reason == SWITCH_REASON + live:
        version = str(data.get("version", ""))
        if version not in releases or not releases[version][1]:
            result["problem"] = (
                "the release before %s was %s (the backup %s was taken right before the switch), but "
                "%s/%s is %s. Install it and switch to it with ansible-playbook site.yml --limit {host} "
                "-e opengram_version=%s, then fetch %s and restore it with playbooks/restore.yml "
                "-e opengram_restore_archive=<the fetched copy>."
                % (live, version, archive, releases_dir, version,
                   "incomplete" if version in releases else "gone (pruned or removed)", version_of(version), archive))
            return result
        result["target"] = {"version": version, "archive": archive, "taken": taken, "reason": reason}
        return result
    if reason.startswith(ROLLBACK_REASON):
        result["problem"] = (
            "%s runs since a rollback (%s, %s): it is the release a rollback returned to, and there is "
            "nothing further to roll back to. The data as it was at that rollback (data of %s) is in %s. "
            "To go forward again: ansible-playbook site.yml --limit {host} -e opengram_version=%s, then, "
            "to get that data back, fetch the archive and run ansible-playbook playbooks/restore.yml "
            "--limit {host} -e opengram_restore_archive=<the fetched copy>."
            % (live, result["switched_at"], reason, data.get("version", "?"), archive,
               version_of(str(data.get("version", "VERSION")))))
        return result
    result["problem"] = (
        "the newest backup taken before %s went live (%s) is %s, taken %s with reason '%s', not the "
        "backup the switch takes ('%s%s'): the data as it was right before the switch is not known "
        "(opengram_backup_before_upgrade=false, or that backup was removed). Releases here: %s. To "
        "run another release: ansible-playbook site.yml --limit {host} -e opengram_version=VERSION, then "
        "restore an archive of that version with playbooks/restore.yml."
        % (live, result["switched_at"], archive, taken, reason or "none", SWITCH_REASON, live, listing))
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            install_dir=dict(type="path", required=True),
            backup_dir=dict(type="path", required=True),
            package=dict(type="str", required=True),
            keep=dict(type="int", default=0),
            name_pattern=dict(type="str", default=ARCHIVE_NAME_PATTERN),
            read_manifest=dict(type="bool", default=False),
            host=dict(type="str", default="HOST"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["keep"] < 0:
        module.fail_json(msg="keep=%d: give 0 (keep every release) or more" % p["keep"])
    result = plan(p["install_dir"], p["backup_dir"], p["package"], p["keep"], p["name_pattern"],
                  p["read_manifest"], p["host"])
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
