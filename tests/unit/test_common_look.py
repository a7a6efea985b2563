"""The one look at the host (plugins/modules/common_look.py) and the filters
that read it (plugins/filter/common_look.py).

An "enable and start" task skips when unit_ready says so, a reload is skipped
when the look says the stamp is paid, a file task skips when the look saw the
file as it would leave it: an answer that claimed any of these for a unit not
running, not enabled, owing a daemon-reload, a stamp that does not match or a
file that differs would let a run miss a change. The unit answers come from a
stand-in `systemctl` that prints what systemd prints; the rest from real
files."""

import os
import pwd
import grp
import subprocess
from pathlib import Path

import pytest
import role_modules

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "plugins/modules/common_look.py"
LOOK = role_modules.load(ROOT / "plugins/filter/common_look.py")
STAMP_MODULE = ROOT / "plugins/modules/common_reload_stamp.py"


def look(args, path_dir=None):
    """The module's answer; with path_dir, its programs (systemctl) found there first."""
    if path_dir is None:
        return role_modules.run_module(MODULE, args)
    old = os.environ["PATH"]
    os.environ["PATH"] = "%s:%s" % (path_dir, old)
    try:
        return role_modules.run_module(MODULE, args)
    finally:
        os.environ["PATH"] = old


def fake_systemctl(tmp_path, states):
    """A systemctl that answers `show` from {unit: (active, need_reload, file_state, started)}, in
    systemd's own property order (not the order asked), one block per unit, blank lines between."""
    fake = tmp_path / "bin" / "systemctl"
    fake.parent.mkdir(exist_ok=True)
    script = ["#!/bin/sh", "first=1", "for unit in \"$@\"; do", "  case $unit in show|--*) continue ;; esac",
              "  [ $first = 1 ] || echo", "  first=0", "  case $unit in"]
    for unit, (active, need, file_state, started) in states.items():
        script.append("    %s) printf 'Id=%s\\nLoadState=loaded\\nActiveState=%s\\nUnitFileState=%s\\n"
                      "ExecMainStartTimestamp=%s\\nNeedDaemonReload=%s\\n' ;;" % (unit, unit, active, file_state,
                                                                                started, need))
    script += ["    *) printf 'Id=%s\\nLoadState=not-found\\nActiveState=inactive\\nUnitFileState=\\n"
               "ExecMainStartTimestamp=\\nNeedDaemonReload=no\\n' \"$unit\" ;;", "  esac", "done"]
    fake.write_text("\n".join(script) + "\n")
    fake.chmod(0o755)
    return fake.parent


STARTED = "Mon 2026-12-07 18:05:21.250000 UTC"
STARTED_EPOCH = 1796666721.25


def test_a_unit_enabled_running_and_loaded_is_ready(tmp_path):
    bin_dir = fake_systemctl(tmp_path, {"opengram.service": ("active", "no", "enabled", STARTED)})
    answer = look({"units": ["opengram.service"]}, bin_dir)
    assert answer["units"] == {"opengram.service": {"active": "active", "reload_owed": False, "enabled": "enabled",
                                                    "loaded": "loaded", "started": STARTED_EPOCH}}
    assert LOOK.unit_ready(answer, "opengram.service")
    assert LOOK.unit_loaded(answer, "opengram.service")


@pytest.mark.parametrize("state", [("inactive", "no", "enabled", ""), ("active", "yes", "enabled", STARTED),
                                   ("active", "no", "disabled", STARTED), ("activating", "no", "enabled", ""),
                                   ("failed", "no", "enabled", "")])
def test_a_unit_stopped_disabled_or_owing_a_reload_is_not_ready(tmp_path, state):
    answer = look({"units": ["opengram.service"]}, fake_systemctl(tmp_path, {"opengram.service": state}))
    assert not LOOK.unit_ready(answer, "opengram.service"), answer["units"]
    assert LOOK.unit_loaded(answer, "opengram.service") == (state[1] == "no")


def test_units_keep_their_own_answers_in_the_order_asked(tmp_path):
    bin_dir = fake_systemctl(tmp_path, {"caddy.service": ("active", "no", "enabled", STARTED),
                                        "opengram.service": ("inactive", "no", "disabled", "")})
    answer = look({"units": ["opengram.service", "caddy.service", "other.service"]}, bin_dir)
    assert LOOK.unit_ready(answer, "caddy.service")
    assert not LOOK.unit_ready(answer, "opengram.service")
    assert answer["units"]["other.service"]["loaded"] == "not-found"
    assert not LOOK.unit_ready(answer, "other.service")


def test_a_missing_unit_or_no_look_is_not_ready():
    assert not LOOK.unit_ready({}, "caddy.service")
    assert not LOOK.unit_loaded({}, "caddy.service")
    assert not LOOK.unit_ready(None, "caddy.service")


def test_settings_newer_than_the_units_start_are_named(tmp_path):
    bin_dir = fake_systemctl(tmp_path, {"opengram.service": ("active", "no", "enabled", STARTED),
                                        "stopped.service": ("inactive", "no", "enabled", "")})
    before, after = tmp_path / "before.env", tmp_path / "after.env"
    before.write_text("a")
    after.write_text("b")
    os.utime(before, (STARTED_EPOCH - 0.000001, STARTED_EPOCH - 0.000001))
    os.utime(after, (STARTED_EPOCH + 0.01, STARTED_EPOCH + 0.01))
    paths = [str(before), str(after), str(tmp_path / "missing")]
    answer = look({"units": ["opengram.service", "stopped.service"], "mtimes": paths}, bin_dir)
    assert LOOK.newer_than_start(answer, "opengram.service", paths) == [str(after)]
    # A unit that is not running owes nothing.
    assert LOOK.newer_than_start(answer, "stopped.service", paths) == []


def test_directories_files_links_and_paths(tmp_path):
    owner, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    directory = tmp_path / "d"
    directory.mkdir(mode=0o750)
    directory.chmod(0o750)
    data = tmp_path / "f"
    data.write_text("hello\n")
    data.chmod(0o640)
    link = tmp_path / "l"
    link.symlink_to("f")
    dangling = tmp_path / "gone"
    dangling.symlink_to("nowhere")
    answer = look({"dirs": [str(directory), str(data), str(tmp_path / "none")],
                   "files": [str(data), str(link), str(directory)],
                   "links": [str(link), str(data)], "paths": [str(dangling), str(tmp_path / "none"), str(data)],
                   "reads": [str(data)], "heads": [str(data)], "md5": [str(link)]})
    assert answer["dirs"] == {str(directory): {"owner": owner, "group": group, "mode": "0750"}}
    assert LOOK.dir_ok(answer, str(directory), owner, group, "0750")
    assert not LOOK.dir_ok(answer, str(directory), owner, group, "0755")
    entry = answer["files"][str(data)]
    assert list(answer["files"]) == [str(data)]  # neither the link nor the directory
    assert (entry["sha256"], entry["owner"], entry["group"], entry["mode"]) == (
        "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03", owner, group, "0640")
    assert answer["links"] == {str(link): "f"}
    assert answer["exists"] == [str(dangling), str(data)]
    assert LOOK.exists(answer, str(dangling)) and not LOOK.exists(answer, str(tmp_path / "none"))
    assert answer["contents"] == {str(data): "hello\n"}
    assert answer["heads"] == {str(data): "68656c6c6f0a"}
    assert answer["md5"] == {str(link): "b1946ac92492d2347c6235b4d2611184"}  # the file the link names


def test_a_file_that_is_not_utf8_text_is_refused_not_mangled(tmp_path):
    binary = tmp_path / "Caddyfile"
    binary.write_bytes(b"\xff\xfe:80 {\n}\n")
    answer = look({"reads": [str(binary)]})
    assert answer.get("failed") and "is not UTF-8 text" in answer["msg"] and str(binary) in answer["msg"]


def test_listdirs_settings_accounts_and_commands(tmp_path):
    releases = tmp_path / "releases"
    (releases / "0.2.1+a").mkdir(parents=True)
    (releases / "0.2.2+b.partial").mkdir()
    (releases / "current").symlink_to("0.2.1+a")
    conf = tmp_path / "renewal.conf"
    conf.write_text("# comment\nversion = 2.1.0\nserver = https://acme.test/dir\n[renewalparams]\n"
                    "  server = https://indented/\nserver = https://second/\n")
    me = pwd.getpwuid(os.getuid())
    answer = look({"listdirs": [str(releases), str(tmp_path / "none")],
                   "settings": {str(conf): ["server", "missing"]},
                   "users": [me.pw_name, "no-such-user-here"], "groups": [grp.getgrgid(os.getgid()).gr_name],
                   "commands": {"echo": ["printf", "a\\nb\\n"], "missing": ["/no/such/program"]}})
    assert answer["listdirs"] == {str(releases): [{"name": "0.2.1+a", "type": "dir"},
                                                  {"name": "0.2.2+b.partial", "type": "dir"},
                                                  {"name": "current", "type": "link"}]}
    assert answer["settings"] == {str(conf): {"server": "https://acme.test/dir"}}
    assert answer["users"] == {me.pw_name: {"uid": me.pw_uid, "gid": me.pw_gid, "comment": me.pw_gecos,
                                            "home": me.pw_dir, "shell": me.pw_shell}}
    assert answer["groups"] == {grp.getgrgid(os.getgid()).gr_name: os.getgid()}
    assert answer["commands"]["echo"] == {"rc": 0, "stdout": "a\nb", "stderr": ""}
    assert answer["commands"]["missing"]["rc"] == 127


def test_a_certificates_names_and_end(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=a.test", "-addext", "subjectAltName=DNS:a.test,DNS:b.test"],
                   check=True, capture_output=True)
    end = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-dateopt", "iso_8601", "-in", str(cert)],
                         check=True, capture_output=True, text=True).stdout
    answer = look({"certificates": [str(cert), str(key), str(tmp_path / "none")]})
    assert list(answer["certificates"]) == [str(cert)]
    assert answer["certificates"][str(cert)]["names"] == ["a.test", "b.test"]
    import datetime
    wanted = datetime.datetime.strptime(end.strip().split("=", 1)[1], "%Y-%m-%d %H:%M:%SZ")
    assert answer["certificates"][str(cert)]["not_after"] == wanted.replace(tzinfo=datetime.timezone.utc).timestamp()


def look_owes(files, stamp):
    """Reload owed according to the look's stamp answer, and according to common_reload_stamp (state: check)."""
    answer = look({"stamps": [{"stamp": str(stamp), "files": [str(f) for f in files]}]})
    module = role_modules.run_module(STAMP_MODULE, {"state": "check", "files": [str(f) for f in files],
                                                    "stamp": str(stamp)})
    return not answer["reloads"][str(stamp)], module["owed"]


def record(files, stamp):
    role_modules.run_module(STAMP_MODULE, {"state": "record", "files": [str(f) for f in files], "stamp": str(stamp)})


def test_the_look_says_paid_exactly_when_the_stamp_module_owes_nothing(tmp_path):
    files = [tmp_path / "Caddyfile", tmp_path / "global.caddy", tmp_path / "site.caddy"]
    stamp = tmp_path / "loaded.sha256"
    for path, text in zip(files, ("import a\n", "{\n}\n", "example.test {\n}\n")):
        path.write_text(text)
    record(files, stamp)
    assert look_owes(files, stamp) == (False, False)
    # A file changed after the reload, a file gone, no stamp: owed, as the module says.
    files[2].write_text("example.test {\n\trespond 1\n}\n")
    assert look_owes(files, stamp) == (True, True)
    record(files, stamp)
    assert look_owes(files, stamp) == (False, False)
    files[1].unlink()
    assert look_owes(files, stamp) == (True, True)
    record(files, stamp)
    assert look_owes(files, stamp) == (False, False)
    stamp.unlink()
    assert look_owes(files, stamp) == (True, True)
    # Nothing there and no stamp: nothing owed.
    for path in files:
        path.unlink(missing_ok=True)
    assert look_owes(files, stamp) == (False, False)


def test_dpkg_answers_are_parsed_per_package(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "dpkg-query").write_text(
        "#!/bin/sh\n"
        "case \"$*\" in\n"
        "  *Conffiles*) printf 'caddy\\t\\n /etc/caddy/Caddyfile 0123abc\\n /etc/x y\\nnginx\\t\\n' ;;\n"
        "  *) printf 'caddy\\tinstalled\\t2.6.2-5\\nnginx\\tconfig-files\\t1.22.1-9\\n'; "
        "echo 'dpkg-query: no packages found matching nosuch' >&2; exit 1 ;;\n"
        "esac\n")
    (fake / "apt-cache").write_text(
        "#!/bin/sh\ncase $1 in\n"
        "  policy) printf 'nodejs:\\n  Installed: (none)\\n  Candidate: 18.19.0+dfsg-6~deb12u2\\n"
        "  Version table:\\n     18.19.0+dfsg-6~deb12u2 500\\n        500 http://deb.debian.org/debian bookworm/main\\n' ;;\n"
        "  madison) printf '    nodejs | 22.11.0-1nodesource1 | https://deb.nodesource.com/node_22.x nodistro/main amd64 Packages\\n"
        "    nodejs | 18.19.0+dfsg-6~deb12u2 | http://deb.debian.org/debian bookworm/main amd64 Packages\\n' ;;\n"
        "esac\n")
    for program in fake.iterdir():
        program.chmod(0o755)
    answer = look({"packages": ["caddy", "nginx", "nosuch"], "conffiles": ["caddy", "nginx"],
                   "candidates": ["nodejs"], "offered": ["nodejs"]}, fake)
    assert answer["packages"] == {"caddy": "installed", "nginx": "config-files"}
    assert answer["versions"] == {"caddy": "2.6.2-5"}
    assert answer["conffiles"] == {"caddy": {"/etc/caddy/Caddyfile": "0123abc", "/etc/x": "y"}, "nginx": {}}
    assert answer["candidates"] == {"nodejs": {"installed": "", "candidate": "18.19.0+dfsg-6~deb12u2"}}
    assert answer["offered"] == {"nodejs": [
        {"version": "22.11.0-1nodesource1", "source": "https://deb.nodesource.com/node_22.x nodistro/main amd64 Packages"},
        {"version": "18.19.0+dfsg-6~deb12u2", "source": "http://deb.debian.org/debian bookworm/main amd64 Packages"}]}


def test_missing_packages_are_those_not_seen_installed():
    look = {"packages": {"sqlite3": "installed", "restic": "not-installed"}}
    assert LOOK.missing_packages(look, ["sqlite3", "restic", "openssh-client"]) == ["restic", "openssh-client"]
    assert LOOK.missing_packages(look, ["sqlite3"]) == []
    assert LOOK.missing_packages({}, ["sqlite3"]) == ["sqlite3"]
