"""What a later run of the playbook does to a converged host.

Both re-run site.yml on one host, so they run where the scenario sets
`ogd_test_safety_checks: true` (real, or its stand-in twins caddy and nginx:
once per proxy); molecule's idempotence step proves changed=0 everywhere."""

import json
import time

from conftest import run_playbook, skip_unless_scenario_flag
from playbook import assert_secrets_absent, recap

CONFIG = "/var/lib/opengram/opengram.config.json"


def read_config(site):
    return json.loads(site.host.check_output("cat %s", CONFIG))


def test_app_written_keys_survive_a_converge_that_changes_owned_keys(site):
    skip_unless_scenario_flag("ogd_test_safety_checks")
    before = read_config(site)
    assert before["push"]["vapidPrivateKey"], "the app did not write its push keys"
    # Something the app writes into its own config (as the Settings page does):
    # an auto-rename setting, a key the role does not own.
    app_written = {"enabled": False, "provider": "openai", "modelId": "converged-%d" % time.time_ns()}
    answer = site.host.check_output(
        "curl -sf -X PATCH -H 'Content-Type: application/json' -H %s -d %s http://127.0.0.1:%s/api/v1/config/admin",
        "Authorization: Bearer " + site.token, json.dumps({"autoRename": app_written}), str(site.port))
    assert json.loads(answer) == {"ok": True}, answer
    assert read_config(site)["autoRename"] == app_written, "PATCH /api/v1/config/admin did not write autoRename"
    title = "converged-%d" % time.time_ns()
    run = run_playbook("--limit", site.name, "-e", json.dumps({"opengram_config_extra": {"branding": {"title": title}}}))
    assert run.returncode == 0, run.stdout[-3000:]
    after = read_config(site)
    assert after["branding"]["title"] == title
    assert after["push"] == before["push"]
    assert after["autoRename"] == app_written
    # Healthy again after the restart the change caused.
    assert json.loads(site.curl(site.base + "/api/v1/health").stdout)["status"] == "ok"


def test_check_mode_on_a_converged_host_reports_no_change(site):
    skip_unless_scenario_flag("ogd_test_safety_checks")
    run = run_playbook("--limit", site.name, "--check", "--diff")
    assert run.returncode == 0, run.stdout[-3000:]
    counters = recap(run.stdout, site.name)
    assert counters["changed"] == 0, run.stdout[-4000:]
    assert counters["failed"] == 0
    assert_secrets_absent(site, run, "--check --diff on a converged host")
