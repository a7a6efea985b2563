# -*- coding: utf-8 -*-
"""Readings of the one look at a host that a role takes at the start of its run.

A converged host needs no change, and finding that out should cost one round
trip per role, not one module run per thing checked (docs/ci-timing.md). A
role calls the common_look module once with every path, unit and package it
will decide on; its tasks test fields of the answer, through these filters
where the test is more than a lookup:

  common_dir_ok(look, path, owner, group, mode)   the directory is there as a task would leave it
  common_unit_ready(look, unit)   enabled, active and loaded as it is on disk (an "enable and
                                  start" task has nothing to do)
  common_unit_loaded(look, unit)  systemd has loaded it as it is on disk (no daemon-reload owed)
  common_exists(look, path)       something is at the path (a dangling link too)
  common_newer_than_start(look, unit, paths)   the paths modified after the unit's main process
                                  started (settings an interrupted run wrote without applying them)
  common_missing_packages(look, packages)   the packages the look did not see installed (a
                                  package it was not asked about counts as missing)
"""

from __future__ import annotations


def dir_ok(look, path, owner, group, mode):
    """True when the look saw the directory with this owner, group and mode."""
    return (look or {}).get("dirs", {}).get(path) == {"owner": owner, "group": group, "mode": mode}


def unit_ready(look, unit):
    """True when the look saw the unit enabled, active, and with nothing on disk newer than what systemd loaded."""
    seen = (look or {}).get("units", {}).get(unit) or {}
    return seen.get("active") == "active" and seen.get("enabled") == "enabled" and seen.get("reload_owed") is False


def unit_loaded(look, unit):
    """True when the look saw that systemd has loaded the unit as it is on disk (no daemon-reload owed)."""
    return ((look or {}).get("units", {}).get(unit) or {}).get("reload_owed") is False


def exists(look, path):
    """True when the look found something at the path."""
    return path in (look or {}).get("exists", [])


def newer_than_start(look, unit, paths):
    """The paths modified after the unit's main process started; none when the unit is not running."""
    seen = (look or {}).get("units", {}).get(unit) or {}
    started = seen.get("started") or 0
    if seen.get("active") != "active" or not started:
        return []
    mtimes = (look or {}).get("mtimes", {})
    return [path for path in paths if path in mtimes and mtimes[path] > started]


def missing_packages(look, packages):
    """The packages the look did not see installed, in the order given."""
    seen = (look or {}).get("packages", {})
    return [name for name in packages if seen.get(name) != "installed"]


class FilterModule:
    def filters(self):
        return {"common_dir_ok": dir_ok, "common_unit_ready": unit_ready, "common_unit_loaded": unit_loaded,
                "common_exists": exists, "common_newer_than_start": newer_than_start,
                "common_missing_packages": missing_packages}
