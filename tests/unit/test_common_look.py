"""roles/common's look (filter_plugins/common_look.py): the unit lines and the
filters that read them, and the Caddy read's reload=paid/owed line against
common_reload_stamp's own checksum.

A "enable and start" task skips when unit_ready says so, and a reload is
skipped when the read says reload=paid: a line that claimed either for a unit
not running, not enabled, owing a daemon-reload, or a stamp that does not
match would let a run miss a change. The unit lines come from a stand-in
`systemctl` that prints what systemd prints."""

import os
import subprocess
from pathlib import Path

import pytest
import role_modules
import yaml

ROOT = Path(__file__).resolve().parents[2]


LOOK = role_modules.load(ROOT / "plugins/filter/common_look.py")
STAMP_MODULE = ROOT / "plugins/modules/common_reload_stamp.py"
CADDY_READ = yaml.safe_load((ROOT / "roles/caddy/vars/main.yml").read_text())["__caddy_read_script"]


def unit_lines(tmp_path, states, *units):
    """The look's lines for units, systemctl answering from {unit: (active, need_reload, file_state)}."""
    fake = tmp_path / "bin" / "systemctl"
    fake.parent.mkdir(exist_ok=True)
    cases = "".join(
        "  *' %s') printf 'UnitFileState=%s\\nActiveState=%s\\nNeedDaemonReload=%s\\n' ;;\n" % (u, f, a, n)
        for u, (a, n, f) in states.items())
    # Properties in systemd's own order (not the order asked), as systemctl show prints them.
    fake.write_text("#!/bin/sh\ncase \"$*\" in\n%s  *) printf 'UnitFileState=\\nActiveState=inactive\\n"
                    "NeedDaemonReload=no\\n' ;;\nesac\n" % cases)
    fake.chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (fake.parent, os.environ["PATH"]))
    argv = ["/bin/sh", "-c", LOOK.common_look_script('look "$@"'), "look", *("u:" + u for u in units)]
    return subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout.splitlines()


def test_a_unit_enabled_running_and_loaded_is_ready(tmp_path):
    lines = unit_lines(tmp_path, {"opengram.service": ("active", "no", "enabled")}, "opengram.service")
    assert lines == ["unit=opengram.service ActiveState=active NeedDaemonReload=no UnitFileState=enabled"]
    assert LOOK.unit_ready(lines, "opengram.service")
    assert LOOK.unit_loaded(lines, "opengram.service")


@pytest.mark.parametrize("state", [("inactive", "no", "enabled"), ("active", "yes", "enabled"),
                                   ("active", "no", "disabled"), ("activating", "no", "enabled"),
                                   ("failed", "no", "enabled")])
def test_a_unit_stopped_disabled_or_owing_a_reload_is_not_ready(tmp_path, state):
    lines = unit_lines(tmp_path, {"opengram.service": state}, "opengram.service")
    assert not LOOK.unit_ready(lines, "opengram.service"), lines
    assert LOOK.unit_loaded(lines, "opengram.service") == (state[1] == "no")


def test_a_missing_unit_or_no_look_is_not_ready(tmp_path):
    lines = unit_lines(tmp_path, {}, "caddy.service")
    assert not LOOK.unit_ready(lines, "caddy.service")
    assert not LOOK.unit_ready([], "caddy.service")
    assert not LOOK.unit_loaded([], "caddy.service")
    # Another unit's line says nothing about this one.
    ready = unit_lines(tmp_path, {"caddy.service": ("active", "no", "enabled")}, "caddy.service")
    assert not LOOK.unit_ready(ready, "opengram.service")


def test_dir_line_is_the_looks_line(tmp_path):
    tmp_path.chmod(0o750)
    out = subprocess.run(["/bin/sh", "-c", LOOK.common_look_script('look "$@"'), "look", "d:%s" % tmp_path],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    owner, group = out[0].split()[1:3]
    assert out == [LOOK.dir_line(str(tmp_path), owner, group, "0750")]


def caddy_read_owes(files, stamp):
    """reload owed according to the Caddy read, and according to common_reload_stamp (state: check)."""
    argv = ["/bin/sh", "-c", LOOK.common_look_script(CADDY_READ), "read-caddyfile",
            str(files[0]), str(stamp), str(files[1]), str(files[2])]
    lines = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.splitlines()
    assert ("reload=paid" in lines) != ("reload=owed" in lines), lines
    module = role_modules.run_module(STAMP_MODULE, {"state": "check", "files": [str(f) for f in files],
                                                    "stamp": str(stamp)})
    return "reload=owed" in lines, module["owed"]


def record(files, stamp):
    role_modules.run_module(STAMP_MODULE, {"state": "record", "files": [str(f) for f in files], "stamp": str(stamp)})


def test_the_caddy_read_says_paid_exactly_when_the_stamp_module_owes_nothing(tmp_path):
    files = [tmp_path / "Caddyfile", tmp_path / "global.caddy", tmp_path / "site.caddy"]
    stamp = tmp_path / "loaded.sha256"
    for path, text in zip(files, ("import a\n", "{\n}\n", "example.test {\n}\n")):
        path.write_text(text)
    record(files, stamp)
    assert caddy_read_owes(files, stamp) == (False, False)
    # A file changed after the reload, a file gone, no stamp: owed, as the module says.
    files[2].write_text("example.test {\n\trespond 1\n}\n")
    assert caddy_read_owes(files, stamp) == (True, True)
    record(files, stamp)
    assert caddy_read_owes(files, stamp) == (False, False)
    files[1].unlink()
    assert caddy_read_owes(files, stamp) == (True, True)
    record(files, stamp)
    assert caddy_read_owes(files, stamp) == (False, False)
    stamp.unlink()
    assert caddy_read_owes(files, stamp) == (True, True)
    # Nothing there and no stamp: nothing owed.
    for path in files:
        path.unlink(missing_ok=True)
    assert caddy_read_owes(files, stamp) == (False, False)
