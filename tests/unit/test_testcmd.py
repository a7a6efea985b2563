"""Unit tests for tools/test.py's reading of molecule's output (no molecule run)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tools import test  # noqa: E402
from tools.test import MoleculeLog  # noqa: E402

OUTPUT = """\
INFO     [caddy > destroy] Executing
PLAY [Destroy] ****
INFO     [caddy > destroy] Executed: Successful
INFO     [caddy > create] Executing
INFO     [caddy > converge] Executing
TASK [opengram : Install Node.js] ****
fatal: [ogd-caddy-app]: FAILED! => {"msg": "boom"}
fatal: [ogd-caddy-client]: FAILED! =>
    changed: false
    msg: 'timed out waiting for ping module test'

INFO     [caddy > idempotence] Executing
CRITICAL Idempotence test failed because of the following tasks:
*  => opengram : Template the unit
INFO     [caddy > verify] Executing
test_proxy.py::test_headers[ansible://ogd-caddy-client] FAILED          [ 10%]
=========================== short test summary info ============================
FAILED test_proxy.py::test_headers[ansible://ogd-caddy-client] - AssertionError: assert 'max-age' in ''
ERROR test_x.py::test_y - RuntimeError: no host
INFO     [caddy > destroy] Executing
"""


def feed(text: str) -> MoleculeLog:
    log = MoleculeLog()
    for i, line in enumerate(text.splitlines(keepends=True)):
        log.feed(line, float(i))
    log.close(100.0)
    return log


def test_phase_times_in_order_with_repeats():
    times = feed(OUTPUT).phase_times()
    assert [name for name, _ in times] == ["destroy", "create", "converge", "idempotence",
                                           "verify", "destroy"]
    assert times[0] == ("destroy", 3.0)  # lines 0 -> 3
    assert times[-1] == ("destroy", 100.0 - 19.0)


def test_failures_name_the_check_and_its_assertion():
    log = feed(OUTPUT)
    assert log.failures == [
        "converge: task 'opengram : Install Node.js': fatal: [ogd-caddy-app]: FAILED! => {\"msg\": \"boom\"}",
        "converge: task 'opengram : Install Node.js': fatal: [ogd-caddy-client]: FAILED! =>"
        " msg: 'timed out waiting for ping module test'",
        "idempotence: changed on the second run: => opengram : Template the unit",
        "FAILED test_proxy.py::test_headers[ansible://ogd-caddy-client] - AssertionError: assert 'max-age' in ''",
        "ERROR test_x.py::test_y - RuntimeError: no host",
    ]
    summary = log.summary("molecule caddy", False)
    assert summary[0].startswith("molecule caddy: FAILED; phases (s): destroy 3, create 1,")
    assert summary[1:] == [f"    {m}" for m in log.failures]


def test_ok_summary_is_one_line():
    assert feed(OUTPUT).summary("molecule caddy", True)[0].startswith("molecule caddy: ok; phases")
    assert len(feed(OUTPUT).summary("molecule caddy", True)) == 1
    assert feed("").summary("x", False) == [
        "x: FAILED; phases (s): none seen", "    (no failed check found in the output; see above)"]


def test_scenarios_run_two_at_a_time_longest_first_each_printed_whole(tmp_path, capsys):
    import os
    fake = tmp_path / "molecule"
    # A stand-in for molecule: prints a phase line, waits for its partner
    # (both scenarios must be running at once), fails for "nginx".
    fake.write_text("#!/bin/sh\n"
                    "echo \"INFO     [$3 > create] Executing\"\n"
                    "touch \"$OGD_FAKE_DIR/$3\"\n"
                    "for i in $(seq 100); do [ $(ls \"$OGD_FAKE_DIR\" | wc -l) -ge 2 ] && break; sleep 0.05; done\n"
                    "echo \"running: $(ls \"$OGD_FAKE_DIR\" | wc -l)\"\n"
                    "[ \"$3\" != nginx ]\n")
    fake.chmod(0o755)
    (tmp_path / "seen").mkdir()
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}", OGD_FAKE_DIR=str(tmp_path / "seen"))
    results = test.run_scenarios(["caddy", "nginx", "real"], env, jobs=2,
                                 extra=[("bench smoke", ["sh", "-c", "echo bench ran; exit 3"])])
    assert [(name, ok) for name, ok, _ in results] == [
        ("molecule real", True), ("molecule nginx", False), ("molecule caddy", True), ("bench smoke", False)]
    assert results[1][2][0].startswith("molecule nginx: FAILED; phases (s): create")
    assert results[3][2] == [], "only scenarios have a phase summary"
    out = capsys.readouterr().out
    assert "running: 2" in out, "the first two scenarios did not run at the same time"
    # each scenario's output is one block, between its own ==> and <== lines
    for name in ("real", "nginx", "caddy"):
        block = out.split(f"==> molecule {name}: output\n", 1)[1].split(f"<== molecule {name}:", 1)[0]
        assert f"[{name} > create] Executing" in block
        assert all(f"[{other} > " not in block for other in ("real", "nginx", "caddy") if other != name)
    assert "<== molecule nginx: FAILED (exit 1)" in out
    assert "bench ran" in out.split("==> bench smoke: output\n", 1)[1]
    assert "<== bench smoke: FAILED (exit 3)" in out


def test_the_checks_run_beside_the_longest_scenario_before_the_next_one(tmp_path, capsys):
    import os
    fake = tmp_path / "molecule"
    # real waits (up to 5 s) for the checks to have run beside it; fleet
    # says whether they had run before it started.
    fake.write_text("#!/bin/sh\n"
                    "if [ \"$3\" = real ]; then\n"
                    "  for i in $(seq 100); do [ -e \"$OGD_FAKE_DIR/lint\" ] && break; sleep 0.05; done\n"
                    "fi\n"
                    "[ -e \"$OGD_FAKE_DIR/lint\" ] && echo \"$3 saw the checks: yes\" || echo \"$3 saw the checks: no\"\n")
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}", OGD_FAKE_DIR=str(tmp_path))
    results = test.run_scenarios(["fleet", "real"], env, jobs=2,
                                 beside=[("lint", ["sh", "-c", "touch \"$OGD_FAKE_DIR/lint\"; echo lint ran"])])
    assert [(name, ok) for name, ok, _ in results] == [("molecule real", True), ("lint", True), ("molecule fleet", True)]
    out = capsys.readouterr().out
    assert "real saw the checks: yes" in out, "the checks did not run while the first scenario ran"
    assert "fleet saw the checks: yes" in out, "the next scenario started before the checks"


def test_the_stand_in_twins_of_real_are_left_out_only_when_real_runs(tmp_path, monkeypatch):
    package = tmp_path / "opengram.tgz"
    monkeypatch.setenv("OGD_REAL_PACKAGE", str(package))
    everything = ["caddy", "fleet", "nginx", "real"]
    # no tarball: real deploys the stand-in (it says so), and caddy and nginx run too
    assert "absent" in test.note("real") and not test.left_out("caddy", everything, named=False)
    package.write_bytes(b"packed")
    assert test.note("real") is None
    assert "real-caddy" in test.left_out("caddy", everything, named=False)
    assert "real-nginx" in test.left_out("nginx", everything, named=False)
    assert test.left_out("fleet", everything, named=False) is None
    # named with --scenario, or real not in this run: they run
    assert test.left_out("caddy", everything, named=True) is None
    assert test.left_out("caddy", ["caddy", "fleet"], named=False) is None
