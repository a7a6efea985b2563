"""The releases module (plugins/modules/opengram_releases.py): which release a
rollback returns to (known from the backup the switch took), why there may be none,
and which releases the deploy prunes."""

import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "plugins/modules/opengram_releases.py"
PACKAGE = "@opengramsh/opengram"
PATTERN = r"^[0-9]{8}T[0-9]{6}Z-[0-9A-Za-z.+_-]+\.tar\.gz$"
T0 = 1_750_000_000  # a fixed moment; every file's time is set relative to it


def load():
    spec = importlib.util.spec_from_file_location("opengram_releases", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


releases = load()


class Host:
    """An install_dir and a backup_dir, laid out as the role leaves them."""

    def __init__(self, tmp_path):
        self.install = tmp_path / "opt"
        self.backups = tmp_path / "backups"
        (self.install / "releases").mkdir(parents=True)
        self.backups.mkdir()

    def release(self, version, at, complete=True):
        path = self.install / "releases" / version
        manifest = path / "lib/node_modules" / PACKAGE / "package.json"
        manifest.parent.mkdir(parents=True)
        if complete:
            manifest.write_text(json.dumps({"name": PACKAGE, "version": version}))
        os.utime(path, (at, at))
        return path

    def switch(self, version, at):
        link = self.install / "current"
        if link.is_symlink():
            link.unlink()
        link.symlink_to(self.install / "releases" / version)
        os.utime(link, (at, at), follow_symlinks=False)

    def backup(self, version, at, reason):
        name = "%s-%s.tar.gz" % (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(at)), version)
        body = json.dumps({"format": 1, "version": version, "reason": reason}).encode()
        with tarfile.open(self.backups / name, "w:gz") as tar:
            info = tarfile.TarInfo("./backup.json")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        return str(self.backups / name)

    def plan(self, keep=0, manifest=True):
        return releases.plan(str(self.install), str(self.backups), PACKAGE, keep, PATTERN, manifest, "app1")


def second_release(tmp_path):
    """0.2.1 installed, live and backed up; 0.2.2 installed beside it, not live yet."""
    host = Host(tmp_path)
    host.release("0.2.1", T0)
    host.switch("0.2.1", T0 + 5)
    host.backup("0.2.1", T0 + 50, "manual")
    host.release("0.2.2", T0 + 100)
    return host


def upgraded(tmp_path):
    """0.2.1 installed, then 0.2.2 installed, backed up before the switch, switched."""
    host = second_release(tmp_path)
    archive = host.backup("0.2.1", T0 + 110, "before the switch to 0.2.2")
    host.switch("0.2.2", T0 + 120)
    host.backup("0.2.2", T0 + 500, "manual")  # later backups are not the switch's
    return host, archive


def test_the_previous_release_and_the_backup_the_switch_took(tmp_path):
    host, archive = upgraded(tmp_path)
    result = host.plan()
    assert result["problem"] == ""
    assert result["live"] == "0.2.2"
    assert result["target"] == {"version": "0.2.1", "archive": archive, "taken": "2025-06-15T15:08:30Z",
                                "reason": "before the switch to 0.2.2"}
    assert result["releases"] == ["0.2.2", "0.2.1"]


def test_a_first_install_has_nothing_to_roll_back_to(tmp_path):
    host = Host(tmp_path)
    host.release("0.2.1", T0)
    host.switch("0.2.1", T0 + 5)
    result = host.plan()
    assert result["target"] == {}
    assert "0.2.1 is the only release under %s/releases" % host.install in result["problem"]


def test_no_link_is_nothing_to_roll_back(tmp_path):
    result = Host(tmp_path).plan()
    assert result["live"] == "" and "no release is live" in result["problem"]
    assert "site.yml" in result["problem"]


def test_a_switch_without_its_backup_is_refused_with_the_way_out(tmp_path):
    host = second_release(tmp_path)
    host.switch("0.2.2", T0 + 120)  # opengram_backup_before_upgrade=false
    result = host.plan()
    assert result["target"] == {}
    assert "no backup taken when 0.2.2 went live" in result["problem"]
    assert "opengram_backup_before_upgrade=false" in result["problem"]
    assert "--limit app1 -e opengram_version=VERSION" in result["problem"]


def test_a_manual_backup_before_the_switch_is_not_taken_for_the_switch_s(tmp_path):
    host = Host(tmp_path)
    host.release("0.2.1", T0)
    host.switch("0.2.1", T0 + 5)
    host.release("0.2.2", T0 + 100)
    host.backup("0.2.1", T0 + 110, "manual")
    host.switch("0.2.2", T0 + 120)
    result = host.plan()
    assert result["target"] == {}
    assert "with reason 'manual', not the backup the switch takes ('before the switch to 0.2.2')" in result["problem"]


def test_the_backup_of_an_earlier_life_of_the_release_is_not_taken(tmp_path):
    """Uninstalled and installed again: the release is newer than the old switch's backup."""
    host = Host(tmp_path)
    host.release("0.2.1", T0 + 1000)
    host.release("0.2.2", T0 + 1000)
    host.backup("0.2.1", T0 + 110, "before the switch to 0.2.2")
    host.switch("0.2.2", T0 + 1010)
    result = host.plan()
    assert result["target"] == {} and "no backup taken when 0.2.2 went live" in result["problem"]


def test_a_gone_previous_release_is_named_with_what_to_do(tmp_path):
    host, archive = upgraded(tmp_path)
    (host.install / "releases/0.2.1/lib/node_modules" / PACKAGE / "package.json").unlink()
    result = host.plan()
    assert result["target"] == {}
    assert "the release before 0.2.2 was 0.2.1" in result["problem"]
    assert "%s/releases/0.2.1 is incomplete" % host.install in result["problem"]
    assert "-e opengram_version=0.2.1" in result["problem"] and archive in result["problem"]


def test_after_a_rollback_there_is_nothing_further_to_roll_back_to(tmp_path):
    host, _ = upgraded(tmp_path)
    aside = host.backup("0.2.2", T0 + 600, "before the rollback from 0.2.2 to 0.2.1")
    host.switch("0.2.1", T0 + 602)
    result = host.plan()
    assert result["live"] == "0.2.1" and result["target"] == {}
    assert "0.2.1 runs since a rollback" in result["problem"] and aside in result["problem"]
    assert "--limit app1 -e opengram_version=0.2.2, then" in result["problem"]
    # ...and the release it came from may be pruned now.
    assert host.plan(keep=1, manifest=False)["prune"] == [str(host.install / "releases/0.2.2")]


def test_pruning_keeps_the_highest_versions_the_live_one_and_the_rollback_target(tmp_path):
    host = Host(tmp_path)
    for index, version in enumerate(("0.1.0", "0.9.0", "0.10.0", "1.0.0-rc.1", "1.0.0")):
        host.release(version, T0 + index)
    host.switch("1.0.0-rc.1", T0 + 10)
    host.backup("1.0.0-rc.1", T0 + 20, "before the switch to 0.9.0")
    host.switch("0.9.0", T0 + 30)  # a downgrade: 1.0.0-rc.1 is what a rollback needs
    plan = host.plan(keep=2, manifest=False)
    assert plan["releases"] == ["1.0.0", "1.0.0-rc.1", "0.10.0", "0.9.0", "0.1.0"]
    assert plan["prune"] == [str(host.install / "releases" / v) for v in ("1.0.0", "0.10.0", "0.1.0")]
    assert host.plan(keep=3, manifest=False)["prune"] == [str(host.install / "releases" / v)
                                                          for v in ("0.10.0", "0.1.0")]
    assert host.plan(keep=0, manifest=False)["prune"] == []
    # keep=1 still keeps both: never the live one nor the rollback target.
    assert host.plan(keep=1, manifest=False)["prune"] == [str(host.install / "releases" / v)
                                                          for v in ("1.0.0", "0.10.0", "0.1.0")]


def test_pruning_does_not_read_an_archive_it_does_not_need(tmp_path, monkeypatch):
    host, _ = upgraded(tmp_path)
    host.release("0.2.0", T0 - 100)
    monkeypatch.setattr(releases, "read_manifest", lambda path: pytest.fail("read " + path))
    assert host.plan(keep=2, manifest=False)["prune"] == [str(host.install / "releases/0.2.0")]


def test_an_install_in_progress_is_neither_a_release_nor_pruned(tmp_path):
    host, _ = upgraded(tmp_path)
    (host.install / "releases/0.3.0.partial").mkdir()
    plan = host.plan(keep=1, manifest=False)
    assert plan["releases"] == ["0.2.2", "0.2.1"] and plan["prune"] == []


def test_the_module_reports_no_change_and_refuses_a_negative_keep(tmp_path):
    host, _ = upgraded(tmp_path)
    args = {"install_dir": str(host.install), "backup_dir": str(host.backups), "package": PACKAGE,
            "name_pattern": PATTERN, "keep": 1, "read_manifest": True, "_ansible_check_mode": True}
    run = subprocess.run([sys.executable, str(MODULE)], input=json.dumps({"ANSIBLE_MODULE_ARGS": args}),
                         capture_output=True, text=True)
    result = json.loads(run.stdout)
    assert result["changed"] is False and result["target"]["version"] == "0.2.1", result
    assert result["prune"] == []
    args["keep"] = -1
    run = subprocess.run([sys.executable, str(MODULE)], input=json.dumps({"ANSIBLE_MODULE_ARGS": args}),
                         capture_output=True, text=True)
    assert json.loads(run.stdout)["failed"] is True
