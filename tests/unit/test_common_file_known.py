"""The look at a role's files and common_file's controller half agree.

Each role looks at the files it writes once per run (plugins/modules/
common_look.py: per file sha256, owner, group, mode) and hands that answer to
its common_file tasks as `known`; plugins/action/common_file.py skips the
module when the entry the task would leave is the one the look saw. If the
two ever disagree on a byte (the mode's zeros, the digest), every file is
written again each run (slow but right); if the look answered for a file that
is not as wanted, a change would be missed: both are checked here against
real files, with the real module."""

import grp
import os
import pwd
from pathlib import Path

import role_modules

ROOT = Path(__file__).resolve().parents[2]
ACTION = role_modules.load(ROOT / "plugins/action/common_file.py")


def look_files(*paths):
    return role_modules.run_module(ROOT / "plugins/modules/common_look.py", {"files": [str(p) for p in paths]})["files"]


def me():
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


def test_a_file_as_wanted_is_known(tmp_path):
    path = tmp_path / "opengram.service"
    path.write_text("[Unit]\nDescription=é\n")
    path.chmod(0o644)
    owner, group = me()
    known = look_files(path, tmp_path / "missing")
    assert ACTION.is_known(known, str(path), "[Unit]\nDescription=é\n", owner, group, "0644")
    assert str(tmp_path / "missing") not in known


def test_a_file_not_as_wanted_is_not_known(tmp_path):
    path = tmp_path / "firewall.nft"
    path.write_text("table inet x {}\n")
    path.chmod(0o600)
    owner, group = me()
    known = look_files(path)
    # Other content, other mode, other owner, other group, another path: the module must run.
    assert not ACTION.is_known(known, str(path), "table inet y {}\n", owner, group, "0600")
    assert not ACTION.is_known(known, str(path), "table inet x {}\n", owner, group, "0644")
    assert not ACTION.is_known(known, str(path), "table inet x {}\n", "nobody", group, "0600")
    assert not ACTION.is_known(known, str(path), "table inet x {}\n", owner, "nogroup-ogd", "0600")
    assert not ACTION.is_known(known, str(tmp_path / "other"), "table inet x {}\n", owner, group, "0600")
    assert ACTION.is_known(known, str(path), "table inet x {}\n", owner, group, "0600")


def test_a_link_is_never_known_as_the_file(tmp_path):
    target = tmp_path / "target"
    target.write_text("x\n")
    target.chmod(0o644)
    link = tmp_path / "link"
    link.symlink_to(target)
    owner, group = me()
    assert not ACTION.is_known(look_files(link), str(link), "x\n", owner, group, "0644")


def test_known_entry_is_none_when_it_cannot_tell():
    assert ACTION.known_entry("/etc/x", "a", "root", "root", "644") is None  # not the 0NNN form the look gives
    assert ACTION.known_entry("/etc/x", "a", None, "root", "0644") is None
    assert ACTION.known_entry("/etc/x", None, "root", "root", "0644") is None
    assert not ACTION.is_known({"/etc/x": {"sha256": "", "owner": "root", "group": "root", "mode": "644"}},
                               "/etc/x", "a", "root", "root", "644")
    assert not ACTION.is_known(None, "/etc/x", "a", "root", "root", "0644")
