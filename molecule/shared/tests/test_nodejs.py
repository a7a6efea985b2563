"""Node.js from where the platform takes it (issue 27): the distribution's own
where it is new enough (Debian 13), NodeSource's repository elsewhere (Debian
12: in molecule/real, NodeSource's layout served by the scenario's vendor host,
molecule/shared/vendor_repo.yml, reached through opengram_nodesource_url). A
host that started on Debian's Node.js 18 ends on NodeSource's major line;
changing opengram_nodesource_major moves Node.js and rebuilds the release for
the new ABI; a repository that cannot be reached changes nothing."""

import json

import pytest

from conftest import run_playbook, runs_last
from playbook import recap
from test_data import chats, create_chat, output

RELEASE_ABI = "/opt/opengram/current/node-abi"
SOURCES = "/etc/apt/sources.list.d/nodesource.sources"


def node_major(site):
    return int(site.host.check_output("node --version").lstrip("v").split(".")[0])


def installed_from(site):
    """The origin line apt-cache policy gives for the installed nodejs."""
    policy = site.host.check_output("apt-cache policy nodejs")
    return policy.split("***", 1)[1].splitlines()[1].strip()


def uses_nodesource(site):
    return site.host.file(SOURCES).exists


def test_node_comes_from_the_platform_s_source(site):
    assert node_major(site) >= 20
    release = site.host.system_info.codename
    if release == "bookworm":
        assert uses_nodesource(site), "Debian 12's own Node.js is 18: NodeSource's repository is the source"
    if uses_nodesource(site):
        assert node_major(site) == site.nodesource_major
        assert site.nodesource_url.split("/")[2] in installed_from(site), installed_from(site)
        pin = site.host.file("/etc/apt/preferences.d/nodesource").content_string
        assert "Package: nodejs" in pin and "Pin-Priority: 600" in pin
    else:
        assert "deb.debian.org" in installed_from(site), installed_from(site)
    # The release runs on the ABI it was built for.
    abi = site.host.check_output("node -p process.versions.modules")
    assert site.host.file(RELEASE_ABI).content_string.strip() == abi


def test_a_host_that_had_debian_s_node_18_was_moved(site):
    if not site.nodesource_switch:
        pytest.skip("this host did not start on the distribution's Node.js 18 (ogd_test_nodesource_switch)")
    history = site.host.check_output("cat /var/log/apt/history.log")
    assert "nodejs:amd64 (18." in history, "the host did not start on Debian's Node.js 18"
    assert node_major(site) == site.nodesource_major


def test_an_unreachable_repository_changes_nothing(site):
    if not site.nodesource_switch:
        pytest.skip("runs on the NodeSource host of the scenario (ogd_test_nodesource_switch)")
    before = site.host.file(SOURCES).content_string
    wrong = "https://%s/nowhere/node_%d.x" % (site.nodesource_url.split("/")[2], site.nodesource_major)
    run = run_playbook("--limit", site.name, "-e", json.dumps({"opengram_nodesource_url": wrong}))
    assert run.returncode != 0, output(run)
    text = " ".join(output(run).split())
    assert wrong + "/dists/nodistro/InRelease cannot be reached from " + site.name in text, output(run)
    assert "Nothing was changed" in text and "opengram_nodesource_url" in text, output(run)
    assert recap(run.stdout, site.name)["changed"] == 0, output(run)
    assert site.host.file(SOURCES).content_string == before


@runs_last
def test_changing_the_major_line_moves_node_and_rebuilds_the_release(site):
    if not site.nodesource_switch:
        pytest.skip("runs on the NodeSource host of the scenario (ogd_test_nodesource_switch)")
    chat = create_chat(site, "before-node-moves")
    abi = site.host.check_output("node -p process.versions.modules")
    pid = site.host.check_output("systemctl show -P MainPID opengram")
    other = 24 if site.nodesource_major != 24 else 22

    run = run_playbook("--limit", site.name, "-e", json.dumps({"opengram_nodesource_major": other}))
    assert run.returncode == 0, output(run)
    assert node_major(site) == other
    new_abi = site.host.check_output("node -p process.versions.modules")
    assert new_abi != abi
    assert site.host.file(RELEASE_ABI).content_string.strip() == new_abi, "the release was not rebuilt"
    assert site.host.check_output("systemctl show -P MainPID opengram") != pid, "Opengram was not restarted"
    assert chat in chats(site)

    back = run_playbook("--limit", site.name)
    assert back.returncode == 0, output(back)
    assert node_major(site) == site.nodesource_major
    assert site.host.file(RELEASE_ABI).content_string.strip() == abi
    assert chat in chats(site)
    again = run_playbook("--limit", site.name)
    assert again.returncode == 0 and recap(again.stdout, site.name)["changed"] == 0, output(again)
