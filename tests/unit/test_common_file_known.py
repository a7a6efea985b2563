"""The look at a role's files and common_file's controller half agree.

roles/opengram (tasks/main.yml, tasks/secret.yml) and roles/caddy
(tasks/read.yml) print one line per file they look at, with roles/common's
look function (filter_plugins/common_look.py); plugins/action/common_file.py
skips the module when the line the task would leave is among them. If the two
ever disagree on a byte (the mode's zeros, the digest), every file is written
again each run (slow but right); if the look printed a line for a file that is
not as wanted, a change would be missed: both are checked here against real
files, with the real scripts."""

import grp
import os
import pwd
import subprocess
from pathlib import Path

import role_modules
import yaml

ROOT = Path(__file__).resolve().parents[2]


known_line = role_modules.load(ROOT / "plugins/action/common_file.py").known_line
LOOK = role_modules.load(ROOT / "plugins/filter/common_look.py")
ROLE_VARS = {role: yaml.safe_load((ROOT / "roles" / role / "vars/main.yml").read_text()) for role in ("opengram", "caddy")}


def opengram_look(*entries, env_extra=None):
    """The opengram role's look (its Jinja parts, the newer-than function, are filled in here)."""
    script = ROLE_VARS["opengram"]["__opengram_look_script"].replace(
        "{{ __opengram_newer_than_unit }}", ROLE_VARS["opengram"]["__opengram_newer_than_unit"])
    assert "{{" not in script
    env = dict(os.environ, OGD_GROUP="nogroup-ogd-test", OGD_USER="nouser-ogd-test",
               OGD_CONFIG_LINK="/nonexistent/link", OGD_OFFSITE="/nonexistent/offsite",
               OGD_CURRENT="/nonexistent/current", OGD_MANIFEST="/nonexistent/package.json",
               OGD_RELEASES="/nonexistent/releases", OGD_SERVICE="nonexistent-ogd-test",
               OGD_ENV_FILE="/nonexistent/env", OGD_FIREWALL_FILE="/nonexistent/nft", OGD_PACKAGES="")
    env.update(env_extra or {})
    argv = ["/bin/sh", "-c", LOOK.common_look_script(script), "opengram-look", *entries]
    return subprocess.run(argv, check=True, capture_output=True, text=True, env=env).stdout.splitlines()


def secret_look(secret_file, *entries):
    script = LOOK.common_look_script(ROLE_VARS["opengram"]["__opengram_secret_read_script"])
    argv = ["/bin/sh", "-c", script, "read-secret", str(secret_file), *entries]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.splitlines()


def caddy_look(caddyfile, *entries, stamp="/nonexistent/stamp", global_file="/nonexistent/g", site="/nonexistent/s"):
    script = LOOK.common_look_script(ROLE_VARS["caddy"]["__caddy_read_script"])
    argv = ["/bin/sh", "-c", script, "read-caddyfile", str(caddyfile), str(stamp), str(global_file), str(site),
            *entries]
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


def test_the_secret_read_prints_the_secret_and_the_lines_of_its_files(tmp_path):
    secret = tmp_path / "instance-secret"
    secret.write_text("og_" + "a" * 43 + "\n")
    secret.chmod(0o600)
    owner, group = me()
    lines = secret_look(secret, "f:%s" % secret, "f:%s" % (tmp_path / "opengram.env"))
    assert "secret=og_" + "a" * 43 in lines
    assert known_line(str(secret), "og_" + "a" * 43 + "\n", owner, group, "0600") in lines
    assert secret_look(tmp_path / "missing") == ["secret="]


def test_the_opengram_look_counts_the_releases_as_the_module_does(tmp_path):
    releases = tmp_path / "releases"
    for name in ("0.2.0", "0.2.1", "0.3.0.partial"):
        (releases / name).mkdir(parents=True)
    (releases / "link").symlink_to(releases / "0.2.0")
    (releases / "file").write_text("")
    lines = opengram_look(env_extra={"OGD_RELEASES": str(releases)})
    assert "releases=2" in lines
    assert "releases=0" in opengram_look()
