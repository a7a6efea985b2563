"""Rollback (issue 14): playbooks/rollback.yml returns a host to the release that
ran before the last upgrade, with the data as it was right before that upgrade,
and tells the operator where the data written since is set aside.

Only where the scenario asks for the data checks (molecule/upgrade: a second
stand-in version and `ogd_test_lifecycle: true`); elsewhere they skip with the
reason. In file order, on the host as the earlier files leave it (one release,
the inventory's): a rollback is refused (nothing to roll back to); an upgrade,
new data, the rollback: the first version serves the data of before the
upgrade through the proxy (the archive of the switch outlives more scheduled
backups than opengram_backup_keep), and the run names the archive holding what was
written after it; a second rollback is refused; the next deploy prunes the
release rolled back from. The host ends as the inventory declares it.
"""

import json
import re

from conftest import release_name, run_playbook
from playbook import recap, task_statuses
from test_release import tree_digest
# The data checks' own fixtures and helpers (test_offsite.py shares them too).
from test_data import (  # noqa: F401 (lifecycle, next_version, scenario, stored: fixtures)
    ARCHIVE_NAME, BACKUPS, CONFIG, HOME, SQLITE_MAGIC, app_writes_config, app_written, archive_member, archives,
    assert_intact, chats, create_chat, create_upload, download_sha256, health, lifecycle, next_version, output,
    playbook, scenario, stored)

RELEASES = "/opt/opengram/releases"
CURRENT = "/opt/opengram/current"
PRUNE_TASK = "opengram_deploy.opengram.opengram : Remove the releases beyond opengram_releases_keep"


def releases(site):
    return set(site.host.check_output("ls -1 %s", RELEASES).split())


def printed(run):
    """What the run printed, each run of whitespace one space (long messages wrap)."""
    return " ".join((run.stdout + "\n" + run.stderr).split())


def test_rollback_is_refused_when_there_is_nothing_to_roll_back_to(site, lifecycle):
    assert releases(site) == {site.release}, "this check needs a host with one release (test_data/test_offsite leave one)"
    before = archives(site)
    run = playbook("rollback.yml", "--limit", site.name)
    assert run.returncode != 0, output(run)
    text = printed(run)
    assert "Cannot roll back %s (nothing was changed on any host)" % site.name in text, output(run)
    assert ("%s is the only release under %s: there is no previous release to roll back to"
            % (site.release, RELEASES)) in text, output(run)
    assert archives(site) == before, "a refused rollback took a backup"
    assert site.host.file(CURRENT).linked_to == "%s/%s" % (RELEASES, site.release)
    answer = health(site)
    assert (answer["status"], answer["version"]) == ("ok", site.version), answer


def test_rollback_returns_to_the_previous_release_with_the_data_of_before_the_upgrade(
        site, stored, scenario, next_version, lifecycle):
    old = site.release
    tarball = "%s/opengramsh-opengram-%s.tgz" % (scenario["artifacts"], next_version)
    new_release = release_name(next_version, tarball, site.locks_dir)
    old_tree = tree_digest(site.host, "%s/%s" % (RELEASES, old))
    # Keeping one release still keeps the one a rollback needs.
    run = run_playbook("--limit", site.name, "-e", "opengram_version=" + next_version,
                       "-e", "opengram_npm_tarball=" + tarball, "-e", "opengram_releases_keep=1")
    assert run.returncode == 0, output(run)
    assert health(site)["version"] == next_version
    assert releases(site) == {old, new_release}

    # Users go on writing under the new release...
    late_chat = create_chat(site, "after-the-upgrade")
    late_upload, _ = create_upload(site, 2000, late_chat)
    app_writes_config(site, "ogd-rollback-after-the-upgrade")

    # The upgrade named the archive its switch took; scheduled backups, more
    # of them than opengram_backup_keep, prune every other old archive but
    # not that one (the rollback below restores it).
    host = site.host
    switch_archive, switched_to = host.check_output("cat %s/.before-switch", BACKUPS).split()
    assert switched_to == new_release and ARCHIVE_NAME.match(switch_archive), switch_archive
    manifest = json.loads(archive_member(site, "%s/%s" % (BACKUPS, switch_archive), "./backup.json"))
    assert (manifest["version"], manifest["reason"]) == (old, "before the switch to %s" % new_release), manifest
    keep = int(host.check_output("sed -n 's/^OPENGRAM_BACKUP_KEEP=//p' /etc/opengram/backup.env").strip("'\""))
    assert keep > 0, "this check needs a retention (opengram_backup_keep > 0)"
    # The timer's own command (opengram-backup.service's ExecStart; test_offsite
    # starts the service itself: more than 5 starts in 10 s would meet
    # systemd's start limit).
    command = host.check_output("systemctl show -P ExecStart opengram-backup.service")
    assert "path=/usr/local/sbin/opengram-backup ; argv[]=/usr/local/sbin/opengram-backup --reason scheduled ;" \
        in command, command
    scheduled = []
    for _ in range(keep + 1):
        before = set(archives(site))
        host.check_output("/usr/local/sbin/opengram-backup --reason scheduled")
        (new,) = set(archives(site)) - before
        scheduled.append(new)
    assert sorted(archives(site)) == sorted([switch_archive] + scheduled[1:]), (
        "retention kept %s (switch archive %s, opengram_backup_keep %d)" % (archives(site), switch_archive, keep))

    # ...until it is rolled back.
    run = playbook("rollback.yml", "--limit", site.name)
    assert run.returncode == 0, output(run)

    # The first version serves, through the proxy, the data of before the upgrade.
    assert health(site)["version"] == site.version
    assert_intact(site, stored)
    assert late_chat not in chats(site)
    assert download_sha256(site, late_upload["id"]) is None
    assert app_written(site) == "ogd-lifecycle-stored", "the config is not the one of before the upgrade"
    assert site.host.file(CURRENT).linked_to == "%s/%s" % (RELEASES, old)
    assert tree_digest(site.host, CURRENT + "/") == old_tree, "the rollback does not run the previous tree as it was"
    assert releases(site) == {old, new_release}, "the rollback removed a release"
    for path in (HOME + "/data/opengram.db", HOME + "/data/uploads", CONFIG,
                 *(HOME + "/" + u["path"] for u in stored["uploads"].values())):
        assert site.host.file(path).user == "opengram", path

    # The run says what was set aside and where: an archive of the data as it
    # was at the rollback, with everything written after the upgrade in it.
    text = printed(run)
    assert "Rolled back %s from Opengram %s to %s" % (site.name, new_release, old) in text, output(run)
    found = re.search(r"Set aside: everything written after \S+ .*? The data as it was at this rollback is in "
                      r"(%s/\S+\.tar\.gz) on %s" % (re.escape(BACKUPS), re.escape(site.name)), text)
    assert found, output(run)
    aside = found.group(1)
    assert ARCHIVE_NAME.match(aside.rsplit("/", 1)[1]) and aside.endswith("-%s.tar.gz" % new_release), aside
    assert (site.host.file(aside).user, site.host.file(aside).mode) == ("root", 0o600)
    manifest = json.loads(archive_member(site, aside, "./backup.json"))
    assert (manifest["version"], manifest["reason"]) == (
        new_release, "before the rollback from %s to %s" % (new_release, old)), manifest
    assert "./data/" + late_upload["storage_path"] in site.host.check_output("tar -tzf %s", aside).split()
    kept_config = json.loads(archive_member(site, aside, "./opengram.config.json"))
    assert kept_config["autoRename"]["modelId"] == "ogd-rollback-after-the-upgrade"
    if site.host.check_output("head -c 16 %s/data/opengram.db | od -An -tx1 | tr -d ' \\n'", HOME) != SQLITE_MAGIC:
        assert late_chat in archive_member(site, aside, "./data/opengram.db"), "the late chat is not set aside"
    assert "opengram_version=%s" % next_version in text, "the run does not say how to go forward again"
    assert not site.host.file("%s/.rollback-%s" % (BACKUPS, aside.rsplit("/", 1)[1])).exists


def test_a_second_rollback_is_refused_and_the_next_deploy_prunes_the_release_rolled_back_from(site, next_version, lifecycle):
    before = archives(site)
    run = playbook("rollback.yml", "--limit", site.name)
    assert run.returncode != 0, output(run)
    text = printed(run)
    assert "%s runs since a rollback" % site.release in text, output(run)
    assert "nothing further to roll back to" in text, output(run)
    assert archives(site) == before, "a refused rollback took a backup"
    assert health(site)["version"] == site.version

    # The deploy as the inventory says, keeping one release: the one rolled
    # back from goes (nothing needs it now), nothing else changes.
    run = run_playbook("--limit", site.name, "-e", "opengram_releases_keep=1")
    assert run.returncode == 0, output(run)
    assert releases(site) == {site.release}
    assert task_statuses(run.stdout, PRUNE_TASK) == ["changed"], output(run)
    assert recap(run.stdout, site.name)["changed"] == 1, output(run)
    assert health(site)["version"] == site.version
