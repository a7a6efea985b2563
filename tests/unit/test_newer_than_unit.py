"""roles/opengram's "newer than the running unit" check: the look (common_look:
the units' start, the settings' modification times) read by the filter
common_newer_than_start gives the files written after the unit last started,
to the microsecond.

In whole seconds, a file written in the same second just BEFORE the start
(the release link switched right before the restart of an upgrade or a
rollback) counted as newer, and the next run restarted Opengram for nothing
(changed=3 instead of 1 in molecule/upgrade's rollback check, 1 Dec 2026).
Run with a stand-in `systemctl` on PATH and files with set times."""

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from test_common_look import LOOK, fake_systemctl, look


def newer(tmp_path, started, files, active="active"):
    stamp = started.strftime("%a %Y-%m-%d %H:%M:%S.%f UTC") if active == "active" else ""
    bin_dir = fake_systemctl(tmp_path, {"opengram.service": (active, "no", "enabled", stamp)})
    paths = [str(f) for f in files]
    answer = look({"units": ["opengram.service"], "mtimes": paths}, bin_dir)
    return [Path(p).name for p in LOOK.newer_than_start(answer, "opengram.service", paths)]


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
