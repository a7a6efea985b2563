# -*- coding: utf-8 -*-
"""The one look at a host that a role takes at the start of its run.

A converged host needs no change, and finding that out should cost one round
trip per role, not one module run per thing checked (docs/ci-timing.md). A
role writes a small shell script printing what it needs as ``key=value``
lines and prepends, with ``| common_look_script``, the shell function
``look``, which prints one line per entry given to it:

  d:<dir>   dir=<path> <owner> <group> <mode>               (a directory, not a link)
  f:<file>  file=<path> <sha256> <owner> <group> <mode>     (a regular file, not a link)
  u:<unit>  unit=<unit> ActiveState=<..> NeedDaemonReload=<..> UnitFileState=<..>
  e:<path>  exists=<path>                                    (anything there, a dangling link too)

Nothing is printed for what is missing. A second function,
``reload_state STAMP FILE...``, prints ``reload=paid`` when the stamp holds
the checksum of the files exactly as roles/common/library/common_reload_stamp
computes it (the service loaded them as they are: its ``state: check`` task
has nothing to report), else ``reload=owed``. The ``file=`` line is the one
``known_line`` of roles/common/action_plugins/common_file.py builds from what
a task would write (a ``common_file`` task given the look's lines as
``known`` then skips the module), ``unit_ready`` tells whether a unit is
enabled, running and loaded as it is on disk (a ``systemd_service`` task
that would enable and start it has nothing to do), ``unit_loaded`` whether
systemd has loaded it as it is on disk, and ``dir_line`` is the
``dir=`` line of a directory as a task would leave it.
"""

from __future__ import annotations

LOOK_FUNCTION = r"""look() {
  for entry in "$@"; do
    path=${entry#?:}
    case $entry in
      d:*) [ -d "$path" ] && [ ! -L "$path" ] || continue
           printf 'dir=%s %s %04d\n' "$path" "$(stat -c '%U %G' -- "$path")" "$(stat -c %a -- "$path")" ;;
      f:*) [ -f "$path" ] && [ ! -L "$path" ] || continue
           printf 'file=%s %s %s %04d\n' "$path" "$(sha256sum < "$path" | cut -d' ' -f1)" \
             "$(stat -c '%U %G' -- "$path")" "$(stat -c %a -- "$path")" ;;
      u:*) printf 'unit=%s %s\n' "$path" "$(systemctl show --property=ActiveState --property=NeedDaemonReload \
             --property=UnitFileState -- "$path" 2>/dev/null | sort | paste -sd' ')" ;;
      e:*) if [ -e "$path" ] || [ -L "$path" ]; then printf 'exists=%s\n' "$path"; fi ;;
    esac
  done
}
reload_state() {
  stamp=$1
  shift
  sum=
  for file in "$@"; do
    if [ -e "$file" ]; then sum=$(cat -- "$@" 2>/dev/null | sha256sum); break; fi
  done
  if [ "$sum" = "$(cat -- "$stamp" 2>/dev/null)" ]; then echo reload=paid; else echo reload=owed; fi
}
"""


def common_look_script(script):
    """The role's script with the look function defined before it."""
    return LOOK_FUNCTION + str(script)


def dir_line(path, owner, group, mode):
    """The look's line for a directory with this owner, group and mode."""
    return "dir=%s %s %s %s" % (path, owner, group, mode)


def unit_ready(lines, unit):
    """True when the look saw the unit enabled, active, and with nothing on disk newer than what systemd loaded."""
    return ("unit=%s ActiveState=active NeedDaemonReload=no UnitFileState=enabled" % unit) in (lines or [])


def exists(lines, path):
    """True when the look found something at the path (an e: entry)."""
    return ("exists=%s" % path) in (lines or [])


def unit_loaded(lines, unit):
    """True when the look saw that systemd has loaded the unit as it is on disk (no daemon-reload owed)."""
    return any(line.startswith("unit=%s " % unit) and "NeedDaemonReload=no" in line.split()
               for line in (lines or []))


class FilterModule:
    def filters(self):
        return {"common_look_script": common_look_script, "common_dir_line": dir_line,
                "common_unit_ready": unit_ready, "common_unit_loaded": unit_loaded,
                "common_exists": exists}
