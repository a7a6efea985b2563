"""roles/common's "reload owed" module: its checksum is the one the shell
version wrote (stamps on converged hosts stay valid), the check reports owed
when the files differ from the stamp, the record is skipped in check mode."""

import subprocess
from pathlib import Path

import pytest
import role_modules

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "plugins/modules/common_reload_stamp.py"


def run_module(args, check_mode=False, diff=False):
    return role_modules.run_module(MODULE, args, check_mode, diff)

# The shell that recorded the stamp before the module (roles/common's
# reload_stamp.yml, up to a5a9b7d): the stamps it left must still match.
OLD_RECORD = """stamp=$1; shift
sum=
for f; do if [ -e "$f" ]; then sum=$(cat -- "$@" 2>/dev/null | sha256sum); break; fi; done
printf '%s\\n' "$sum" > "$stamp"
"""


def old_record(stamp, files):
    subprocess.run(["/bin/sh", "-c", OLD_RECORD, "reload-stamp", str(stamp)] + [str(f) for f in files], check=True)


@pytest.fixture
def files(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    a.write_text("Caddyfile\n")
    c.write_text("site\n")
    return [a, b, c]  # b is missing


@pytest.mark.parametrize("present", [(0, 1, 2), (0, 2), ()])
def test_a_stamp_the_shell_wrote_is_not_owed(tmp_path, files, present):
    for i, path in enumerate(files):
        if i not in present and path.exists():
            path.unlink()
    stamp = tmp_path / "stamp"
    old_record(stamp, files)
    old = stamp.read_text()
    result = run_module({"state": "check", "files": [str(f) for f in files], "stamp": str(stamp)})
    assert result["changed"] is False and result["owed"] is False, result
    # and the module records the same bytes
    stamp.unlink()
    assert run_module({"state": "record", "files": [str(f) for f in files], "stamp": str(stamp)})["changed"] is False
    assert stamp.read_text() == old


def test_changed_files_are_owed_until_recorded(tmp_path, files):
    stamp = tmp_path / "stamp"
    args = {"files": [str(f) for f in files], "stamp": str(stamp)}
    assert run_module(dict(args, state="check"))["changed"] is True  # files, no stamp
    run_module(dict(args, state="record"))
    assert stamp.read_text().endswith("  -\n")
    assert run_module(dict(args, state="check"))["changed"] is False
    files[2].write_text("site changed\n")
    owed = run_module(dict(args, state="check"), check_mode=True)  # the check runs in check mode too
    assert owed["changed"] is True and owed["owed"] is True
    run_module(dict(args, state="record"))
    assert run_module(dict(args, state="check"))["changed"] is False


def test_no_files_and_no_stamp_is_not_owed_and_a_stamp_without_files_is(tmp_path):
    stamp = tmp_path / "stamp"
    args = {"files": [str(tmp_path / "none")], "stamp": str(stamp)}
    assert run_module(dict(args, state="check"))["changed"] is False
    stamp.write_text("0" * 64 + "  -\n")
    assert run_module(dict(args, state="check"))["changed"] is True


def test_record_is_skipped_in_check_mode(tmp_path, files):
    stamp = tmp_path / "stamp"
    result = run_module({"state": "record", "files": [str(f) for f in files], "stamp": str(stamp)}, check_mode=True)
    assert result["changed"] is False and result.get("skipped") is True
    assert not stamp.exists()
