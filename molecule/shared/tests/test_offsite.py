"""Scheduled backups and their offsite copy (issue 14), where the scenario asks
for them (molecule/upgrade: `ogd_test_offsite_backup` on the app host, an SFTP
server on a client with `ogd_test_sftp_server`, made by molecule/shared/prepare.yml).

In file order: the backup settings go on with `--tags backup` (a second run
changes nothing); the timer is armed; its service, started three times as the
timer starts it, leaves the newest two archives (opengram_backup_keep: 2) and
the SFTP repository on the other container the newest two snapshots; then a
fresh install (data, user and local archives purged) gets every chat and
upload byte back from that repository, and a last run without the offsite
settings removes their secrets again.
"""

import json
import os

import pytest

from conftest import ansible_json, host_instance_secret, skip_unless_scenario_flag
from playbook import output, recap, run_playbook, run_with_vars
import test_data
from test_data import BACKUPS, HOME, archive_member, chats, create_chat, create_upload, download_sha256

REPOSITORY_PASSWORD = "ogd-offsite-Repo-pw-9Xq2"
PASSWORD_FILE = "/etc/opengram/offsite/restic-password"


@pytest.fixture(scope="module")
def offsite(site):
    skip_unless_scenario_flag("ogd_test_offsite_backup")
    servers = [name for name, on in ansible_json("clients", "ogd_test_sftp_server | default(false) | bool").items() if on]
    assert len(servers) == 1, "the scenario needs one client with ogd_test_sftp_server, found %s" % servers
    artifacts = ansible_json(site.name, "ogd_test_artifacts")[site.name]
    with open(os.path.join(artifacts, "offsite-sftp.key")) as key, open(os.path.join(artifacts, "offsite-known_hosts")) as known:
        values = {"opengram_backup_offsite_repository": "sftp:restic@%s:/srv/restic/opengram" % servers[0],
                  "opengram_backup_offsite_password": REPOSITORY_PASSWORD,
                  "opengram_backup_offsite_sftp_key": key.read(),
                  "opengram_backup_offsite_sftp_known_hosts": known.read(),
                  "opengram_backup_keep": 2, "opengram_backup_offsite_keep": 2}
    import testinfra
    return {"vars": values, "server": testinfra.get_host("docker://" + servers[0]), "key": values["opengram_backup_offsite_sftp_key"]}


@pytest.fixture(scope="module")
def offsite_data(site, offsite):
    """Chats and an upload stored through the public API before the scheduled backups."""
    data = {"chats": {}, "uploads": {}}
    for index in range(2):
        title = "offsite-%d" % index
        data["chats"][create_chat(site, title)] = title
    media, digest = create_upload(site, 200000, next(iter(data["chats"])))
    data["uploads"][media["id"]] = digest
    return data


def archives(site):
    """The archive names on the host, oldest first (names sort by time)."""
    return sorted(test_data.archives(site))


def assert_no_offsite_secret(run, offsite):
    text = output(run)
    assert REPOSITORY_PASSWORD not in text, "the repository password leaked in the run's output"
    assert offsite["key"].strip().splitlines()[1] not in text, "the SFTP key leaked in the run's output"


def test_scheduled_backups_prune_and_reach_the_sftp_repository(site, offsite, offsite_data):
    host = site.host
    run = run_with_vars(offsite["vars"], "--limit", site.name, "--tags", "backup")
    assert run.returncode == 0, output(run, 4000)
    assert recap(run.stdout, site.name)["changed"] > 0
    assert "Deploy Opengram" in run.stdout and "Template opengram.env" not in run.stdout, "--tags backup ran more"
    assert_no_offsite_secret(run, offsite)
    again = run_with_vars(offsite["vars"], "--limit", site.name, "--tags", "backup")
    assert again.returncode == 0 and recap(again.stdout, site.name)["changed"] == 0, output(again, 4000)
    for path in (PASSWORD_FILE, "/etc/opengram/offsite/sftp.key", "/etc/opengram/backup.env"):
        assert (host.file(path).user, host.file(path).mode) == ("root", 0o600), path
    assert host.file("/etc/opengram/offsite").mode == 0o700

    # The timer is armed (enabled, active, with a next time).
    assert host.check_output("systemctl is-enabled opengram-backup.timer") == "enabled"
    assert host.check_output("systemctl is-active opengram-backup.timer") == "active"
    assert host.check_output("systemctl show -p NextElapseUSecRealtime --value opengram-backup.timer") not in ("", "n/a")

    # Fired three times, as the timer fires it: a oneshot start returns when the backup is done.
    made = []
    for _ in range(3):
        before = set(archives(site))
        host.check_output("systemctl start opengram-backup.service")
        assert host.check_output("systemctl show -p Result --value opengram-backup.service") == "success"
        (new,) = set(archives(site)) - before
        made.append(new)
    assert archives(site) == made[1:], "retention (opengram_backup_keep: 2) kept %s" % archives(site)
    manifest = json.loads(archive_member(site, "%s/%s" % (BACKUPS, made[-1]), "./backup.json"))
    assert manifest["reason"] == "scheduled"
    journal = host.check_output("journalctl -u opengram-backup.service --no-pager -o cat")
    assert "%s sent to sftp:restic@" % made[-1] in journal

    # The other container holds the repository, pruned to the newest two of this host.
    server = offsite["server"]
    snapshots = server.check_output("ls -1 /srv/restic/opengram/snapshots").split()
    assert len(snapshots) == 2, snapshots
    assert server.file("/srv/restic/opengram/config").user == "restic"
    listed = json.loads(host.check_output(
        "set -a; . /etc/opengram/backup.env; restic --cache-dir %s/.restic-cache -o \"sftp.args=$OPENGRAM_RESTIC_SFTP_ARGS\" "
        "snapshots --json", BACKUPS))
    assert sorted(p.rsplit("/", 1)[-1] for s in listed for p in s["paths"]) == made[1:]


def test_a_fresh_install_gets_everything_back_from_the_sftp_repository(site, offsite, offsite_data):
    """Also the restore onto a fresh install of test_data.py (which skips where this runs): the
    archive comes out of restic onto the controller and takes the very same restore path."""
    host = site.host
    push = json.loads(host.check_output("cat %s/opengram.config.json", HOME))["push"]
    assert push["vapidPrivateKey"], "the app did not write its push keys"
    run = run_playbook("--limit", site.name, "-e", "opengram_uninstall_purge_data=true", playbook="playbooks/uninstall.yml")
    assert run.returncode == 0, output(run, 4000)
    host.check_output("rm -rf %s", BACKUPS)
    assert not host.file(HOME).exists and not host.file("/usr/local/sbin/opengram-backup").exists
    try:
        run = run_with_vars(offsite["vars"], "--limit", site.name)
        assert run.returncode == 0, output(run, 4000)
        site.token = host_instance_secret(host)
        assert not set(offsite_data["chats"]) & set(chats(site)), "the fresh install still has the old chats"

        run = run_with_vars(dict(offsite["vars"], opengram_restore_offsite_snapshot="latest"), "--limit", site.name,
                            playbook="playbooks/restore.yml")
        assert run.returncode == 0, output(run, 4000)
        assert_no_offsite_secret(run, offsite)
        served = chats(site)
        for chat_id, title in offsite_data["chats"].items():
            assert served.get(chat_id) == title, "chat %s (%s) not restored" % (chat_id, title)
        for media_id, digest in offsite_data["uploads"].items():
            assert download_sha256(site, media_id) == digest, "upload %s not restored byte for byte" % media_id
        assert json.loads(host.check_output("cat %s/opengram.config.json", HOME))["push"] == push, "push keys changed"
        for path in (HOME + "/data/opengram.db", HOME + "/opengram.config.json", HOME + "/data/uploads"):
            assert host.file(path).user == "opengram", path
    finally:
        # Back to the inventory's own settings: the offsite secrets go again.
        run = run_playbook("--limit", site.name)
        assert run.returncode == 0, output(run, 4000)
    assert not host.file(PASSWORD_FILE).exists, "offsite turned off, yet its password file stays"
