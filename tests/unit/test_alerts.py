"""The alert hook (issue 28): the preflight's checks of opengram_alert_command and
opengram_alert_url (filter_plugins/opengram_input.py, opengram_host.py), and the
program the hook runs (templates/usr/local/sbin/opengram-alert.j2) against fake
systemctl, journalctl and curl: what the command and the ping URL receive."""

import importlib.util
import json
import os
import stat
import subprocess
from pathlib import Path

import jinja2
import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("opengram_input", ROOT / "plugins/filter/opengram_input.py")
checks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(checks)

SECRET_URL = "https://hc-ping.example/0f4e-secret-uuid"



def test_no_hook_and_a_good_hook_pass(values):
    assert checks.opengram_input_problems(values) == []
    values.update(opengram_alert_command="/usr/local/bin/notify-admin", opengram_alert_url=SECRET_URL + "/")
    assert checks.opengram_input_problems(values, {"report": "alert_command=ok"}) == []


@pytest.mark.parametrize("command", ["notify-admin", "/usr/bin/mail -s x root", "/usr/local/bin/../x", "/bin/a'b"])
def test_a_command_that_is_no_absolute_path_is_refused(values, command):
    values["opengram_alert_command"] = command
    (problem,) = checks.opengram_input_problems(values)
    assert problem.startswith("opengram_alert_command='%s' is not the absolute path" % command)
    assert "e.g. opengram_alert_command: /usr/local/bin/notify-admin" in problem


def test_a_command_missing_on_the_host_is_refused(values):
    values["opengram_alert_command"] = "/usr/local/bin/notify-admin"
    (problem,) = checks.opengram_input_problems(values, {"report": "alert_command=missing"})
    assert "opengram_alert_command='/usr/local/bin/notify-admin' is not an executable file on this host" in problem


@pytest.mark.parametrize("url, expected", [
    ("http://hc-ping.example/0f4e-secret-uuid", "must be an https:// URL, not http://"),
    ("hc-ping.example/0f4e-secret-uuid", "must be an https:// URL, not no scheme"),
    (SECRET_URL + "?x=1", "is not a plain https URL"),
    ("https://user:0f4e-secret-uuid@hc-ping.example/", "is not a plain https URL"),
    ("https://hc-ping.example/0f4e-secret-uuid'; rm -rf /", "is not a plain https URL"),
    (["https://hc-ping.example/0f4e-secret-uuid"], "is not a single string"),
])
def test_a_bad_url_is_refused_without_showing_it(values, url, expected):
    values["opengram_alert_url"] = url
    problems = checks.opengram_input_problems(values)
    assert len(problems) == 1 and expected in problems[0], problems
    assert "value not shown" in problems[0] and "secret-uuid" not in problems[0]


# ---- the program --------------------------------------------------------------------------

FAKE_SYSTEMCTL = """#!/bin/sh
# systemctl show --property=NAME --value -- UNIT: the value from $FAKE_UNIT (JSON)
prop=${2#--property=}
exec python3 -c 'import json, os, sys; print(json.loads(os.environ["FAKE_UNIT"]).get(sys.argv[1], ""))' "$prop"
"""
FAKE_JOURNALCTL = "#!/bin/sh\necho 'Dec 01 opengram-backup[1]: tar: /var/backups/opengram: Not a directory'\n"
# curl: records its arguments, its config (stdin) and the body file it was given.
FAKE_CURL = """#!/bin/sh
for a in "$@"; do case $a in @*) body=${a#@} ;; esac; done
{ printf 'argv:'; printf ' %s' "$@"; echo; printf 'config:'; cat; printf 'body:'; cat "$body"; } >> "$FAKE_LOG/curl"
exit "${FAKE_CURL_RC:-0}"
"""
RECORDER = """#!/usr/bin/env python3
import json, os, sys
with open(os.path.join(os.environ["FAKE_LOG"], "command"), "a") as out:
    out.write(json.dumps({"args": sys.argv[1:], "stdin": sys.stdin.read(),
                          "env": {k: v for k, v in os.environ.items() if k.startswith("OPENGRAM_ALERT")}}) + "\\n")
"""


def _executable(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def alert(tmp_path):
    """Runs the rendered program as `opengram-alert INSTANCE` with the settings
    given, the unit's systemd properties faked; returns (completed process, log dir)."""
    template = (ROOT / "roles/opengram/templates/usr/local/sbin/opengram-alert.j2").read_text()
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    environment.filters["comment"] = lambda text: "# " + str(text)
    etc = tmp_path / "etc"
    etc.mkdir()
    program = _executable(tmp_path / "opengram-alert", environment.from_string(template).render(
        opengram_config_dir=str(etc), ansible_managed="Ansible managed"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "systemctl", FAKE_SYSTEMCTL)
    _executable(bin_dir / "journalctl", FAKE_JOURNALCTL)
    _executable(bin_dir / "curl", FAKE_CURL)
    _executable(bin_dir / "hostname", "#!/bin/sh\necho container-7\n")
    recorder = _executable(tmp_path / "notify", RECORDER)
    log = tmp_path / "log"
    log.mkdir()

    def run(instance, unit, command=True, url=True, curl_rc=0):
        (etc / "alert.env").write_text(
            "OPENGRAM_ALERT_HOST='app1'\nOPENGRAM_ALERT_DOMAIN='chat.example.com'\n"
            "OPENGRAM_ALERT_COMMAND='%s'\nOPENGRAM_ALERT_URL='%s'\n" % (recorder if command else "", SECRET_URL if url else ""))
        env = dict(os.environ, PATH="%s:%s" % (bin_dir, os.environ["PATH"]), FAKE_UNIT=json.dumps(unit),
                   FAKE_LOG=str(log), FAKE_CURL_RC=str(curl_rc))
        return subprocess.run([str(program), instance], env=env, capture_output=True, text=True), log
    return run


BACKUP_FAILED = {"SubState": "failed", "Result": "exit-code", "ExecMainStatus": "1",
                 "Description": "Back up Opengram's data (opengram-backup)"}


def test_a_failure_runs_the_command_and_pings_url_fail(alert):
    run, log = alert("fail:opengram-backup.service", BACKUP_FAILED)
    assert run.returncode == 0, run.stderr
    (call,) = [json.loads(line) for line in (log / "command").read_text().splitlines()]
    subject = "app1: opengram-backup.service failed: exited with status 1"
    assert call["args"] == ["app1", "opengram-backup.service", subject]
    assert call["stdin"].startswith(subject + "\n") and "Not a directory" in call["stdin"]
    assert "host: app1 (chat.example.com), container-7" in call["stdin"]
    assert call["env"]["OPENGRAM_ALERT_UNIT"] == "opengram-backup.service"
    assert call["env"]["OPENGRAM_ALERT_RESULT"] == "exit-code"
    assert call["env"]["OPENGRAM_ALERT_MESSAGE"] == call["stdin"].rstrip("\n")
    assert "OPENGRAM_ALERT_URL" not in call["env"], "the command got the secret URL"
    curl = (log / "curl").read_text()
    assert 'config:url = "%s/fail"' % SECRET_URL in curl
    argv = curl.split("\n", 1)[0]
    assert "secret-uuid" not in argv, "the URL was on curl's command line"
    assert "body:" + subject in curl
    assert "secret-uuid" not in run.stdout + run.stderr


def test_a_crash_loop_says_so(alert):
    # systemd 257 keeps the last run's result (exit-code) when the start limit ends the restarts.
    run, log = alert("fail:opengram.service", {"SubState": "failed", "Result": "exit-code", "ExecMainStatus": "9",
                                               "NRestarts": "5"}, url=False)
    assert run.returncode == 0, run.stderr
    (call,) = [json.loads(line) for line in (log / "command").read_text().splitlines()]
    assert call["args"][2] == ("app1: opengram.service failed: exited with status 9, after 5 restarts: systemd gave "
                               "up restarting it (crash loop)")
    assert not (log / "curl").exists()


def test_a_success_pings_the_url_only(alert):
    run, log = alert("ok:opengram-backup.service", {"SubState": "dead", "Result": "success"})
    assert run.returncode == 0, run.stderr
    assert not (log / "command").exists(), "the command runs on failures only"
    assert 'config:url = "%s"\n' % SECRET_URL in (log / "curl").read_text()


def test_a_unit_about_to_restart_raises_no_alert(alert):
    run, log = alert("fail:opengram.service", {"SubState": "auto-restart", "Result": "exit-code"})
    assert run.returncode == 0 and "no alert" in run.stdout
    assert not (log / "command").exists() and not (log / "curl").exists()


def test_an_undelivered_ping_fails_the_alert_unit_without_showing_the_url(alert):
    run, _ = alert("fail:opengram-backup.service", BACKUP_FAILED, command=False, curl_rc=22)
    assert run.returncode == 1
    assert "did not answer" in run.stderr and "secret-uuid" not in run.stdout + run.stderr


def test_a_bad_instance_is_refused(alert):
    run, _ = alert("opengram.service", {})
    assert run.returncode == 2 and "usage" in run.stderr
