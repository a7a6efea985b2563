"""roles/opengram's "newer than the running unit" check (the shell function
__opengram_newer_than_unit, called by the role's look at the host):
it prints the files written after the unit last started, to the microsecond.

In whole seconds, a file written in the same second just BEFORE the start
(the release link switched right before the restart of an upgrade or a
rollback) counted as newer, and the next run restarted Opengram for nothing
(changed=3 instead of 1 in molecule/upgrade's rollback check, 1 Dec 2026).
Run with a stand-in `systemctl` on PATH and files with set times."""

import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
FUNCTION = yaml.safe_load((ROOT / "roles/opengram/vars/main.yml").read_text())["__opengram_newer_than_unit"]
# The function, then a line after it: a `return` that were an `exit` would end the whole look.
SCRIPT = FUNCTION + '\nnewer_than_unit "$@"\necho end-of-look\n'


def newer(tmp_path, started, files, active="active"):
    fake = tmp_path / "bin" / "systemctl"
    fake.parent.mkdir(exist_ok=True)
    # As systemd prints ExecMainStartTimestamp: --timestamp=unix in whole
    # seconds ("@1796103112"), --timestamp=us+utc to the microsecond
    # ("Tue 2026-12-01 05:31:52.314805 UTC").
    fake.write_text("#!/bin/sh\n"
                    "case \"$*\" in\n"
                    "  *--timestamp=unix*) echo '@%d' ;;\n"
                    "  *--timestamp=us+utc*) echo '%s' ;;\n"
                    "  is-active*) echo %s ;;\n"
                    "esac\n" % (int(started.timestamp()), started.strftime("%a %Y-%m-%d %H:%M:%S.%f UTC"), active))
    fake.chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (fake.parent, os.environ["PATH"]))
    out = subprocess.run(["/bin/sh", "-c", SCRIPT, "newer-than-unit", "opengram", *map(str, files)],
                         env=env, check=True, capture_output=True, text=True).stdout
    lines = out.splitlines()
    assert lines[-1] == "end-of-look"
    return [Path(line).name for line in lines[:-1]]


def file_at(tmp_path, name, when):
    path = tmp_path / name
    path.write_text(name)
    stamp = when.timestamp()
    os.utime(path, (stamp, stamp))
    return path


def test_only_files_written_after_the_start_to_the_microsecond(tmp_path):
    started = datetime(2026, 12, 1, 5, 31, 52, 800000, tzinfo=timezone.utc)
    files = [file_at(tmp_path, "same-second-before", started - timedelta(milliseconds=500)),
             file_at(tmp_path, "earlier", started - timedelta(seconds=3)),
             file_at(tmp_path, "same-second-after", started + timedelta(milliseconds=100)),
             file_at(tmp_path, "later", started + timedelta(seconds=2))]
    assert newer(tmp_path, started, files) == ["same-second-after", "later"]


def test_nothing_when_the_unit_is_not_running(tmp_path):
    started = datetime(2026, 12, 1, 5, 31, 52, tzinfo=timezone.utc)
    files = [file_at(tmp_path, "later", started + timedelta(seconds=2))]
    assert newer(tmp_path, started, files, active="inactive") == []
