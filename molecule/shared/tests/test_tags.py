"""Tags (docs/operations.md "Tags"): each on a converged fleet of Caddy and nginx hosts runs
its own part and changes nothing, and the preflight runs whatever the tags.

Where the scenario turns `ogd_test_tags` on (molecule/fleet: both proxies).
One run per tag over every host at once.
"""

import pytest

from conftest import ansible_json, run_playbook, skip_unless_scenario_flag
from playbook import output, recap

PREFLIGHT = "TASK [opengram_deploy.opengram.opengram : Check the deployment variables]"
# A task only that tag runs (besides the roles that tag shares with another).
SIGNATURE = {
    "opengram": "TASK [opengram_deploy.opengram.opengram : Template opengram.env]",
    "caddy": "TASK [opengram_deploy.opengram.common : Compare the live files with the wanted ones: Caddy's configuration",
    "nginx": "TASK [opengram_deploy.opengram.nginx : Choose the site's shape",
    "certbot": "TASK [opengram_deploy.opengram.certbot : Publish the certificate paths",
    "selfcheck": "TASK [opengram_deploy.opengram.opengram_selfcheck : Wait for HTTPS on the public URL",
    "backup": "TASK [opengram_deploy.opengram.opengram_backup : Install the backup program]",
}
# tag: what it must run, what it must not.
TAGS = {
    "opengram": (["opengram", "backup"], ["caddy", "nginx", "certbot", "selfcheck"]),
    "proxy": (["caddy", "nginx", "certbot"], ["opengram", "selfcheck", "backup"]),
    "certificates": (["certbot"], ["opengram", "caddy", "nginx", "selfcheck", "backup"]),
    "selfcheck": (["selfcheck"], ["opengram", "caddy", "nginx", "certbot", "backup"]),
    "backup": (["backup"], ["opengram", "caddy", "nginx", "certbot", "selfcheck"]),
}


@pytest.fixture(scope="module")
def hosts():
    skip_unless_scenario_flag("ogd_test_tags")
    proxies = ansible_json("opengram", "opengram_proxy")
    assert {"caddy", "nginx"} <= set(proxies.values()), "the tags check needs both proxies, found %s" % proxies
    return sorted(proxies)


@pytest.mark.parametrize("tag", list(TAGS))
def test_each_tag_runs_its_part_and_changes_nothing_on_a_converged_host(tag, hosts):
    run = run_playbook("--tags", tag)
    assert run.returncode == 0, output(run, 4000)
    for host in hosts:
        counters = recap(run.stdout, host)
        assert counters["changed"] == 0 and counters["failed"] == 0, (host, counters, output(run, 4000))
    assert PREFLIGHT in run.stdout, "the preflight did not run with --tags %s" % tag
    runs, skips = TAGS[tag]
    for part in runs:
        assert SIGNATURE[part] in run.stdout, "--tags %s did not run %s" % (tag, part)
    for part in skips:
        assert SIGNATURE[part] not in run.stdout, "--tags %s also ran %s" % (tag, part)
