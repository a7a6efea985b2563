"""plugins/modules/common_file.py: the file module the roles write their
files with (one module run instead of template/copy's five round trips).
Run as Ansible runs it (JSON arguments on stdin)."""

import os
import stat
from pathlib import Path

import role_modules

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "plugins/modules/common_file.py"


def run_module(args, check_mode=False, diff=False):
    return role_modules.run_module(MODULE, args, check_mode, diff)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_writes_with_the_mode_then_is_a_no_op(tmp_path):
    dest = tmp_path / "opengram.env"
    first = run_module({"dest": str(dest), "content": "A=1\n", "mode": "0640"}, diff=True)
    assert first["changed"] is True, first
    assert dest.read_text() == "A=1\n" and mode(dest) == 0o640
    assert first["diff"][0]["after"] == "A=1\n" and first["diff"][0]["before"] == ""
    second = run_module({"dest": str(dest), "content": "A=1\n", "mode": "0640"})
    assert second["changed"] is False, second
    assert not list(tmp_path.glob(".common_file.*")), "a temporary file was left behind"


def test_new_content_shows_a_diff_and_keeps_the_mode(tmp_path):
    dest = tmp_path / "site.caddy"
    dest.write_text("old\n")
    dest.chmod(0o600)
    result = run_module({"dest": str(dest), "content": "new\n", "mode": "0600"}, diff=True)
    assert result["changed"] is True
    assert result["diff"][0]["before"] == "old\n" and result["diff"][0]["after"] == "new\n"
    assert dest.read_text() == "new\n" and mode(dest) == 0o600


def test_a_mode_that_drifted_is_put_back(tmp_path):
    dest = tmp_path / "backup.env"
    dest.write_text("X=1\n")
    dest.chmod(0o644)
    result = run_module({"dest": str(dest), "content": "X=1\n", "mode": "0600"}, diff=True)
    assert result["changed"] is True
    assert mode(dest) == 0o600
    assert result["diff"] == [{"before": {"mode": "0644"}, "after": {"mode": "0600"}}]


def test_check_mode_changes_nothing_and_tells_what_would_change(tmp_path):
    dest = tmp_path / "unit.service"
    dest.write_text("before\n")
    dest.chmod(0o644)
    result = run_module({"dest": str(dest), "content": "after\n", "mode": "0644"}, check_mode=True, diff=True)
    assert result["changed"] is True
    assert dest.read_text() == "before\n"
    absent = tmp_path / "absent"
    result = run_module({"dest": str(absent), "content": "x\n", "mode": "0600"}, check_mode=True)
    assert result["changed"] is True and not absent.exists()
    same = run_module({"dest": str(dest), "content": "before\n", "mode": "0644"}, check_mode=True)
    assert same["changed"] is False


def test_remote_src_copies_a_file_of_the_host(tmp_path):
    staged, live = tmp_path / "staged", tmp_path / "live"
    staged.write_bytes(b"site\n")
    assert run_module({"dest": str(live), "remote_src": str(staged), "mode": "0644"})["changed"] is True
    assert live.read_bytes() == b"site\n"
    assert run_module({"dest": str(live), "remote_src": str(staged), "mode": "0644"})["changed"] is False
    missing = run_module({"dest": str(live), "remote_src": str(tmp_path / "nope")})
    assert missing.get("failed") and "does not exist" in missing["msg"]


def test_a_failed_validation_leaves_the_file_as_it_was(tmp_path):
    dest = tmp_path / "firewall.nft"
    dest.write_text("good\n")
    result = run_module({"dest": str(dest), "content": "bad\n", "validate": "grep -q good %s"})
    assert result.get("failed") and result["msg"] == "failed to validate"
    assert dest.read_text() == "good\n"
    assert not list(tmp_path.glob(".common_file.*"))
    ok = run_module({"dest": str(dest), "content": "good too\n", "validate": "grep -q good %s"})
    assert ok["changed"] is True and dest.read_text() == "good too\n"


def test_a_missing_directory_is_an_error_that_names_it(tmp_path):
    result = run_module({"dest": str(tmp_path / "no" / "file"), "content": "x"})
    assert result.get("failed") and "does not exist" in result["msg"]


def test_check_mode_on_a_fresh_host_where_the_directory_is_not_made_yet(tmp_path):
    dest = tmp_path / "etc-opengram" / "opengram.env"
    result = run_module({"dest": str(dest), "content": "A=1\n", "mode": "0640"}, check_mode=True, diff=True)
    assert result["changed"] is True and not result.get("failed"), result
    assert result["diff"][0]["after"] == "A=1\n"
    assert not dest.parent.exists()
