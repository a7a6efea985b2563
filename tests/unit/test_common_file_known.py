"""The look at a role's files and common_file's controller half agree.

roles/opengram (__opengram_account_script) and roles/caddy (tasks/read.yml)
print one line per file they look at; roles/common/action_plugins/common_file.py
skips the module when the line the task would leave is among them. If the two
ever disagree on a byte (the mode's zeros, the digest), every file is written
again each run (slow but right); if the look printed a line for a file that is
not as wanted, a change would be missed: both are checked here against real
files, with the real scripts."""

import grp
import importlib.util
import os
import pwd
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _plugin():
    path = ROOT / "roles/common/action_plugins/common_file.py"
    spec = importlib.util.spec_from_file_location("common_file_action", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


known_line = _plugin().known_line


def opengram_look(*entries):
    script = yaml.safe_load((ROOT / "roles/opengram/vars/main.yml").read_text())["__opengram_account_script"]
    argv = ["/bin/sh", "-c", script, "look", "nogroup-ogd-test", "nouser-ogd-test", "/nonexistent/link",
            "/nonexistent/offsite", *entries]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.splitlines()


def caddy_look(caddyfile, *entries):
    task = yaml.safe_load((ROOT / "roles/caddy/tasks/read.yml").read_text())[0]
    script = task["ansible.builtin.command"]["argv"][2]
    argv = ["/bin/sh", "-c", script, "read-caddyfile", str(caddyfile), *entries]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.splitlines()


def me():
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


def test_the_opengram_look_prints_the_line_of_a_file_as_wanted(tmp_path):
    path = tmp_path / "opengram.service"
    path.write_text("[Unit]\nDescription=é\n")
    path.chmod(0o644)
    owner, group = me()
    lines = opengram_look("f:%s" % path, "f:%s" % (tmp_path / "missing"))
    assert known_line(str(path), "[Unit]\nDescription=é\n", owner, group, "0644") in lines
    assert not [line for line in lines if "missing" in line], lines


def test_a_file_not_as_wanted_is_not_known(tmp_path):
    path = tmp_path / "firewall.nft"
    path.write_text("table inet x {}\n")
    path.chmod(0o600)
    owner, group = me()
    lines = opengram_look("f:%s" % path)
    # Other content, other mode, other owner: the module must run.
    assert known_line(str(path), "table inet y {}\n", owner, group, "0600") not in lines
    assert known_line(str(path), "table inet x {}\n", owner, group, "0644") not in lines
    assert known_line(str(path), "table inet x {}\n", "nobody", group, "0600") not in lines
    assert known_line(str(path), "table inet x {}\n", owner, group, "0600") in lines


def test_the_caddy_read_prints_the_same_lines(tmp_path):
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(":80 {\n}\n")
    caddyfile.chmod(0o644)
    site = tmp_path / "site.caddy"
    site.write_text("example.test {\n}\n")
    site.chmod(0o640)
    owner, group = me()
    lines = caddy_look(caddyfile, "d:%s" % tmp_path, "f:%s" % caddyfile, "f:%s" % site)
    assert known_line(str(caddyfile), ":80 {\n}\n", owner, group, "0644") in lines
    assert known_line(str(site), "example.test {\n}\n", owner, group, "0640") in lines
    assert "dir=%s %s %s %04o" % (tmp_path, owner, group, tmp_path.stat().st_mode & 0o7777) in lines
    assert "owner=%s" % owner in lines and "mode=0644" in lines


def test_known_line_is_none_when_it_cannot_tell():
    assert known_line("/etc/x", "a", "root", "root", "644") is None  # not the 0NNN form the look prints
    assert known_line("/etc/x", "a", None, "root", "0644") is None
    assert known_line("/etc/x", None, "root", "root", "0644") is None
