"""The config merge module: owned keys merged, app-written keys kept, no-op when equal."""

import json
from pathlib import Path

import pytest
import role_modules

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "plugins/modules/opengram_json_merge.py"


def run_module(args, check_mode=False, diff=False):
    return role_modules.run_module(MODULE, args, check_mode, diff)


def load():
    return role_modules.load(MODULE)


def test_merge_is_recursive_and_keeps_other_keys():
    merge = load().merge
    app = {"server": {"port": 1, "extra": True}, "push": {"vapidPrivateKey": "k"}, "models": [1, 2]}
    owned = {"server": {"port": 3000}, "models": [3]}
    assert merge(app, owned) == {"server": {"port": 3000, "extra": True}, "push": {"vapidPrivateKey": "k"}, "models": [3]}
    assert app["server"]["port"] == 1  # input not modified


def test_creates_the_file_then_is_a_no_op(tmp_path):
    path = tmp_path / "opengram.config.json"
    first = run_module({"path": str(path), "settings": {"server": {"port": 3000}}})
    assert first["changed"] is True
    assert json.loads(path.read_text()) == {"server": {"port": 3000}}
    second = run_module({"path": str(path), "settings": {"server": {"port": 3000}}})
    assert second["changed"] is False


def test_app_written_keys_and_key_order_survive(tmp_path):
    path = tmp_path / "c.json"
    original = {"push": {"enabled": True, "vapidPublicKey": "pub", "vapidPrivateKey": "priv"},
                "server": {"port": 1}, "ui": {"theme": "dark"}}
    path.write_text(json.dumps(original, indent=2) + "\n")
    result = run_module({"path": str(path), "settings": {"server": {"port": 3000}}})
    assert result["changed"] is True
    after = json.loads(path.read_text())
    assert after["push"] == original["push"] and after["ui"] == original["ui"]
    assert list(after) == ["push", "server", "ui"]
    assert path.read_text().startswith('{\n  "push"')


def test_check_mode_writes_nothing_and_diff_shows_the_change(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"server": {"port": 1}}\n')
    result = run_module({"path": str(path), "settings": {"server": {"port": 2}}}, check_mode=True, diff=True)
    assert result["changed"] is True
    assert '"port": 2' in result["diff"]["after"]
    assert json.loads(path.read_text()) == {"server": {"port": 1}}


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_invalid_existing_file_fails_clearly(tmp_path, content):
    path = tmp_path / "c.json"
    path.write_text(content)
    result = run_module({"path": str(path), "settings": {"a": 1}})
    assert result["failed"] is True
    assert str(path) in result["msg"]
    assert path.read_text() == content


def test_written_atomically_with_its_mode_and_no_temporary_file_left(tmp_path):
    path = tmp_path / "opengram.config.json"
    run_module({"path": str(path), "settings": {"a": 1}, "mode": "0640"})
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    path.chmod(0o604)
    # Without a mode, a rewrite keeps the replaced file's.
    assert run_module({"path": str(path), "settings": {"a": 2}})["changed"] is True
    assert oct(path.stat().st_mode & 0o777) == "0o604"
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["opengram.config.json"]
