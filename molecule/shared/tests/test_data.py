"""What users stored survives an upgrade, a backup and restore, an uninstall and a reinstall.

Only where the scenario asks for it (molecule/upgrade): the upgrade needs a
second stand-in version (ogd_test_standin_extra_versions); backup/restore and
uninstall need `ogd_test_lifecycle: true`. Elsewhere these tests skip with the
reason. They build on each other in file order (pytest runs them so): the data
is created once, the upgrade moves to the next version, backup/restore and the
uninstall run on the upgraded host, and the last test reinstalls with site.yml
as the inventory says, so the host ends as the scenario declared it (the
shared checks in test_public.py run after this file).
"""

import json
import os
import re
import tarfile
import time
import urllib.parse

import pytest

import playbook as playbooks
from conftest import ansible_json, assert_other_sites_answer_as_before, host_instance_secret, release_name, run_playbook
from playbook import recap

HOME = "/var/lib/opengram"
CONFIG = HOME + "/opengram.config.json"
BACKUPS = "/var/backups/opengram"
ARCHIVE_NAME = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9A-Za-z.+_-]+\.tar\.gz$")
SQLITE_MAGIC = "53514c69746520666f726d6174203300"

_SCENARIO = ('{"extra": ogd_test_standin_extra_versions | default([]), "artifacts": ogd_test_artifacts,'
             ' "lifecycle": ogd_test_lifecycle | default(false) | bool,'
             ' "offsite": ogd_test_offsite_backup | default(false) | bool}')


def playbook(name, *args):
    """Run playbooks/<name> against the scenario's inventory; returns the completed process."""
    return run_playbook(*args, playbook=os.path.join("playbooks", name))


def output(run):
    """The tail of what a playbook printed."""
    return playbooks.output(run, tail=4000)


# ---- the public API, from the client --------------------------------------------------

def create_chat(site, title):
    return site.create_chat(title)["id"]


def create_upload(site, size, chat_id):
    """Upload `size` random bytes into the chat's media; returns (media, sha256 computed on the client)."""
    path = "/opt/ogd-probes/data-%d-%d.bin" % (size, time.time_ns())
    site.client.check_output("head -c %s /dev/urandom > %s", str(size), path)
    digest = site.client.check_output("sha256sum %s", path).split()[0]
    status, body = site.upload(path, chat_id)
    assert status == 201, body
    media = json.loads(body)
    assert (media["chat_id"], media["byte_size"]) == (chat_id, size), media
    return media, digest


def chats(site):
    """{id: title} of every chat the app lists (all pages of GET /api/v1/chats)."""
    found, cursor = {}, None
    while True:
        status, body = site.api("GET", "/api/v1/chats?limit=100" + ("&cursor=" + urllib.parse.quote(cursor, safe="") if cursor else ""))
        assert status == 200, body
        page = json.loads(body)
        found.update((chat["id"], chat["title"]) for chat in page["data"])
        cursor = page["cursor"]["next"] if page["cursor"]["hasMore"] else None
        if not cursor:
            return found


def download_sha256(site, media_id):
    """sha256 of the upload's bytes as the client downloads them (GET /api/v1/files/{id}),
    or None when the app does not have it."""
    path = "/opt/ogd-probes/download.bin"
    result = site.curl("--output", path, "--write-out", "%{http_code}", *site.auth_header(),
                       site.base + "/api/v1/files/" + media_id)
    assert result.rc == 0, result.stderr
    if result.stdout != "200":
        return None
    return site.client.check_output("sha256sum %s", path).split()[0]


def health(site):
    result = site.curl(site.base + "/api/v1/health")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


# ---- the host ---------------------------------------------------------------------------

def read_config(site):
    return json.loads(site.host.check_output("cat %s", CONFIG))


def app_writes_config(site, marker):
    """The app rewriting its own config, as its Settings page does: an auto-rename
    setting (a key the role does not own), `marker` as its model."""
    answer = site.host.check_output(
        "curl -sf -X PATCH -H 'Content-Type: application/json' -H %s -d %s http://127.0.0.1:%s/api/v1/config/admin",
        "Authorization: Bearer " + site.token,
        json.dumps({"autoRename": {"enabled": False, "provider": "anthropic", "modelId": marker}}), str(site.port))
    assert json.loads(answer) == {"ok": True}, answer
    assert app_written(site) == marker, "PATCH /api/v1/config/admin did not write autoRename"


def app_written(site):
    return (read_config(site).get("autoRename") or {}).get("modelId")


def archives(site):
    listing = site.host.run("ls -1 %s", BACKUPS)
    return {name for name in listing.stdout.split() if ARCHIVE_NAME.match(name)}


def archive_member(site, archive, member):
    return site.host.check_output("tar -xzOf %s %s", archive, member)


def assert_intact(site, stored):
    """Every stored chat and upload byte is served again; the app's push keys are the same."""
    served = chats(site)
    for chat_id, title in stored["chats"].items():
        assert served.get(chat_id) == title, "chat %s (%s) lost" % (chat_id, title)
    for upload_id, upload in stored["uploads"].items():
        assert download_sha256(site, upload_id) == upload["sha256"], "upload %s lost or changed" % upload_id
    config = read_config(site)
    assert config["push"] == stored["push"], "the app's push keys changed"


# ---- fixtures ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scenario(site):
    return ansible_json(site.name, _SCENARIO)[site.name]


@pytest.fixture(scope="module")
def next_version(site, scenario):
    versions = [v for v in scenario["extra"] if v != site.version]
    if not versions:
        pytest.skip("no second version to upgrade to in this scenario (ogd_test_standin_extra_versions)")
    return versions[0]


@pytest.fixture(scope="module")
def lifecycle(scenario):
    if not scenario["lifecycle"]:
        pytest.skip("the scenario does not run the backup/restore/uninstall checks (ogd_test_lifecycle: true)")
    return scenario


@pytest.fixture(scope="module")
def stored(site):
    """What users stored through the public API (chats, uploads) plus an app-written config key."""
    data = {"chats": {}, "uploads": {}}
    for index in range(3):
        title = "lifecycle-%d-%d" % (index, time.time_ns())
        data["chats"][create_chat(site, title)] = title
    for size, chat_id in zip((1, 300000), data["chats"]):
        media, digest = create_upload(site, size, chat_id)
        # Where the app keeps the bytes, relative to its data directory
        # (uploads/<chat id>/<media id>.<ext>).
        assert media["storage_path"].startswith("uploads/%s/%s" % (chat_id, media["id"])), media
        data["uploads"][media["id"]] = {"sha256": digest, "path": "data/" + media["storage_path"]}
    app_writes_config(site, "ogd-lifecycle-stored")
    config = read_config(site)
    assert config["push"]["vapidPrivateKey"], "the app did not write its push keys"
    data["push"] = config["push"]
    return data


# ---- tests (file order matters) ---------------------------------------------------------

def test_upgrade_keeps_every_chat_upload_and_push_key(site, stored, scenario, next_version):
    old = site.release
    before = archives(site)
    tarball = "%s/opengramsh-opengram-%s.tgz" % (scenario["artifacts"], next_version)
    new_release = release_name(next_version, tarball, site.locks_dir)
    run = run_playbook("--limit", site.name, "-e", "opengram_version=" + next_version,
                       "-e", "opengram_npm_tarball=" + tarball)
    assert run.returncode == 0, output(run)

    assert health(site)["version"] == next_version
    assert_intact(site, stored)
    releases = site.host.file("/opt/opengram/current")
    assert releases.linked_to == "/opt/opengram/releases/" + new_release
    assert site.host.file("/opt/opengram/releases/" + old).is_directory

    # One backup, of the old version, taken before the switch, root only.
    new = sorted(archives(site) - before)
    assert len(new) == 1 and new[0].endswith("-%s.tar.gz" % old), new
    archive = "%s/%s" % (BACKUPS, new[0])
    directory = site.host.file(BACKUPS)
    assert (directory.user, directory.mode) == ("root", 0o700)
    assert (site.host.file(archive).user, site.host.file(archive).mode) == ("root", 0o600)
    members = site.host.check_output("tar -tzf %s", archive).split()
    for upload in stored["uploads"].values():
        assert "./" + upload["path"] in members
    assert {"./data/opengram.db", "./opengram.config.json", "./backup.json"} <= set(members)
    manifest = json.loads(archive_member(site, archive, "./backup.json"))
    assert manifest["version"] == old
    assert json.loads(archive_member(site, archive, "./opengram.config.json"))["push"] == stored["push"]
    # The database is copied as the kind of file it is: SQLite through its
    # online backup, the stand-in's JSON document as it is.
    header = site.host.check_output("head -c 16 %s/data/opengram.db | od -An -tx1 | tr -d ' \\n'", HOME)
    if header == SQLITE_MAGIC:
        assert manifest["database"] == "sqlite-online-backup"
    else:
        assert manifest["database"] == "file-copy"
        database = archive_member(site, archive, "./data/opengram.db")
        for chat_id in stored["chats"]:
            assert chat_id in database


def test_restore_refuses_without_an_archive_or_with_a_foreign_one(site, lifecycle, tmp_path):
    missing = playbook("restore.yml", "--limit", site.name)
    assert missing.returncode != 0
    assert "Set opengram_restore_archive" in missing.stdout + missing.stderr, output(missing)

    foreign = tmp_path / "not-a-backup.tar.gz"
    (tmp_path / "hello.txt").write_text("hello\n")
    with tarfile.open(foreign, "w:gz") as tar:
        tar.add(tmp_path / "hello.txt", arcname="./hello.txt")
    before = archives(site)
    refused = playbook("restore.yml", "--limit", site.name, "-e", "opengram_restore_archive=%s" % foreign)
    assert refused.returncode != 0
    assert "is not an Opengram backup" in refused.stdout + refused.stderr, output(refused)
    assert archives(site) == before, "a refused restore touched the host"
    assert health(site)["status"] == "ok"


def test_backup_then_restore_brings_back_exactly_the_backup(site, stored, lifecycle, tmp_path):
    fetch_dir = tmp_path / "fetched"
    run = playbook("backup.yml", "--limit", site.name, "-e", "opengram_backup_fetch_dir=%s" % fetch_dir)
    assert run.returncode == 0, output(run)
    fetched = sorted(fetch_dir.glob("*.tar.gz"))
    assert len(fetched) == 1, fetched
    assert str(fetched[0]) in run.stdout, "the playbook does not print where the backup is"
    assert fetched[0].stat().st_mode & 0o777 == 0o600

    # Life goes on after the backup...
    late_chat = create_chat(site, "after-the-backup")
    late_upload, _ = create_upload(site, 1000, late_chat)
    app_writes_config(site, "ogd-lifecycle-after-the-backup")

    # ...and the restore takes the host back to the backup.
    run = playbook("restore.yml", "--limit", site.name, "-e", "opengram_restore_archive=%s" % fetched[0])
    assert run.returncode == 0, output(run)
    assert health(site)["status"] == "ok"
    assert late_chat not in chats(site)
    assert download_sha256(site, late_upload["id"]) is None
    assert_intact(site, stored)
    assert app_written(site) == "ogd-lifecycle-stored", "the config is not the backup's"
    for path in (HOME + "/data/opengram.db", HOME + "/data/uploads", CONFIG,
                 *(HOME + "/" + u["path"] for u in stored["uploads"].values())):
        assert site.host.file(path).user == "opengram", path
    assert site.host.file(CONFIG).mode == 0o640

    # What the restore replaced was backed up first.
    replaced = "%s/%s" % (BACKUPS, sorted(archives(site))[-1])
    assert json.loads(archive_member(site, replaced, "./backup.json"))["reason"].startswith("before restoring")
    assert "./data/" + late_upload["storage_path"] in site.host.check_output("tar -tzf %s", replaced).split()


def sqlite(host, db, sql):
    """Run SQL on the host's database as the service user (never root: the
    -wal/-shm files must stay the service's)."""
    return host.check_output("runuser -u opengram -- sqlite3 %s %s", db, sql)


def test_a_sqlite_database_is_backed_up_online_while_it_is_written(site, lifecycle, tmp_path):
    """The real Opengram keeps SQLite (WAL mode) where the stand-in keeps a JSON
    document: the backup must copy a database that another process holds open
    and writes, consistently, through sqlite3's online backup."""
    host = site.host
    db = HOME + "/data/opengram.db"
    aside = HOME + "/data/opengram.db.standin"
    writer = "ogd-test-sqlite-writer"
    host.check_output("systemctl stop opengram")
    host.check_output("mv %s %s", db, aside)
    try:
        sqlite(host, db, "PRAGMA journal_mode=WAL; CREATE TABLE messages (id INTEGER PRIMARY KEY, body TEXT);")
        # One connection that stays open and inserts a row every 10 ms, as a busy app does.
        host.check_output(
            "systemd-run --collect --unit %s --uid opengram --gid opengram /bin/sh -c %s", writer,
            "while :; do echo \"INSERT INTO messages (body) VALUES (hex(randomblob(32)));\"; sleep 0.01; done"
            " | sqlite3 %s" % db)
        deadline = time.monotonic() + 60
        while int(sqlite(host, db, "SELECT count(*) FROM messages;")) < 50:
            assert time.monotonic() < deadline, "the writer does not write"
        before = archives(site)
        run = playbook("backup.yml", "--limit", site.name, "-e", "opengram_backup_fetch_dir=%s" % tmp_path)
        assert run.returncode == 0, output(run)
        assert host.service(writer).is_running, "the writer stopped during the backup"
        live_rows = int(sqlite(host, db, "SELECT count(*) FROM messages;"))

        new = sorted(archives(site) - before)
        assert len(new) == 1, new
        archive = "%s/%s" % (BACKUPS, new[0])
        assert json.loads(archive_member(site, archive, "./backup.json"))["database"] == "sqlite-online-backup"
        copy = "/root/ogd-test-sqlite-copy.db"
        host.check_output("tar -xzOf %s ./data/opengram.db > %s", archive, copy)
        assert host.check_output("sqlite3 %s 'PRAGMA integrity_check;'", copy) == "ok"
        copied_rows = int(host.check_output("sqlite3 %s 'SELECT count(*) FROM messages;'", copy))
        assert 50 <= copied_rows <= live_rows, (copied_rows, live_rows)
        # The live database's WAL files still belong to the service.
        for suffix in ("-wal", "-shm"):
            assert host.file(db + suffix).user == "opengram", db + suffix
    finally:
        host.run("systemctl stop %s", writer)
        host.run("rm -f %s %s-wal %s-shm /root/ogd-test-sqlite-copy.db", db, db, db)
        host.run("mv %s %s", aside, db)
        host.check_output("systemctl start opengram")
    deadline = time.monotonic() + 60
    while site.curl("--fail", site.base + "/api/v1/health").rc != 0:
        assert time.monotonic() < deadline, "Opengram did not come back on its own database"


def _listening_ports(host):
    lines = host.check_output("ss -Htln").splitlines()
    return {int(line.split()[3].rsplit(":", 1)[1]) for line in lines if line.strip()}


def test_uninstall_keeps_the_data_and_site_yml_brings_it_all_back(site, stored, lifecycle):
    run = playbook("uninstall.yml", "--limit", site.name)
    assert run.returncode == 0, output(run)

    host = site.host
    assert not host.file("/etc/systemd/system/opengram.service").exists
    assert host.run("systemctl cat opengram.service").rc != 0
    # The proxy keeps serving the operator's own site if it has one (issue 14),
    # and holds neither 80 nor 443 then; one that served only ours is stopped.
    kept = site.proxy in site.other_sites
    assert (host.service(site.proxy).is_running, host.service(site.proxy).is_enabled) == (kept, kept)
    assert not {80, 443, 3000} & _listening_ports(host)
    for url in ("http://%s/" % site.domain, "https://%s/" % site.domain, "http://%s:3000/" % site.domain):
        refused = site.client.run("curl --silent --max-time 5 --insecure --output /dev/null %s", url)
        assert refused.rc == 7, "%s still answers (curl exit %d)" % (url, refused.rc)
    assert_other_sites_answer_as_before(site, "after the uninstall")
    assert not host.file("/opt/opengram").exists
    # Of /etc/opengram only the instance secret stays (agents keep theirs).
    assert host.check_output("ls -A /etc/opengram") == "instance-secret"
    if site.proxy == "caddy":
        # Only what the role added is gone: the Caddyfile is the operator's
        # (or Debian's stock one) byte for byte.
        caddyfile = host.file("/etc/caddy/Caddyfile").content_string
        assert "# BEGIN opengram-deploy" not in caddyfile and site.domain not in caddyfile
        if "caddy" in site.other_sites:
            assert caddyfile == host.file("/root/ogd-test-operator-Caddyfile").content_string
        else:
            assert "file_server" in caddyfile, "not the stock Caddyfile"
        assert not host.file("/etc/caddy/opengram-deploy").exists
        assert not host.file("/etc/systemd/system/caddy.service.d").exists
    elif site.proxy == "nginx":
        assert not host.file("/etc/nginx/sites-available/opengram").exists
        assert host.file("/etc/nginx/sites-enabled/default").is_symlink
    # The data stays, owned as before.
    assert host.file(HOME + "/data/opengram.db").user == "opengram"
    for upload in stored["uploads"].values():
        assert host.file(HOME + "/" + upload["path"]).exists, upload["path"]
    assert read_config(site)["push"] == stored["push"]

    again = playbook("uninstall.yml", "--limit", site.name)
    assert again.returncode == 0, output(again)
    assert recap(again.stdout, site.name)["changed"] == 0, output(again)

    # Reinstall as the inventory says: nothing users stored is lost.
    run = run_playbook("--limit", site.name)
    assert run.returncode == 0, output(run)
    assert health(site)["version"] == site.version
    assert host_instance_secret(host) == site.token, "the reinstall answers to another secret"
    assert_intact(site, stored)
    assert_other_sites_answer_as_before(site, "after the reinstall")


def test_restore_onto_a_fresh_install_brings_back_the_data(site, stored, lifecycle, tmp_path):
    """A new host: nothing of Opengram left (data, user and backups purged), site.yml
    installs it afresh with an empty database, and the backup fetched to the
    controller earlier is restored onto it. Where the scenario runs test_offsite.py, its
    fresh-install restore is this one (the archive comes out of restic onto the controller,
    then takes this same restore path, and is checked the same: chats, upload bytes, push
    keys, owners): not run twice."""
    if lifecycle["offsite"]:
        pytest.skip("test_offsite.py restores onto a fresh install through the same path, out of the offsite repository")
    fetch_dir = tmp_path / "fetched"
    run = playbook("backup.yml", "--limit", site.name, "-e", "opengram_backup_fetch_dir=%s" % fetch_dir)
    assert run.returncode == 0, output(run)
    (archive,) = sorted(fetch_dir.glob("*.tar.gz"))

    run = playbook("uninstall.yml", "--limit", site.name, "-e", "opengram_uninstall_purge_data=true")
    assert run.returncode == 0, output(run)
    host = site.host
    host.check_output("rm -rf %s", BACKUPS)
    assert not host.file(HOME).exists and not host.user("opengram").exists
    assert not host.file("/etc/opengram").exists, "purged, yet the instance secret is left"

    run = run_playbook("--limit", site.name)
    assert run.returncode == 0, output(run)
    # A fresh install makes a new instance secret: the agents (and these checks) take it.
    old_token, site.token = site.token, host_instance_secret(host)
    assert site.token and site.token != old_token
    assert not set(stored["chats"]) & set(chats(site)), "the fresh install still has the old chats"

    run = playbook("restore.yml", "--limit", site.name, "-e", "opengram_restore_archive=%s" % archive)
    assert run.returncode == 0, output(run)
    assert health(site)["version"] == site.version
    assert_intact(site, stored)
    for path in (HOME + "/data/opengram.db", CONFIG, *(HOME + "/" + u["path"] for u in stored["uploads"].values())):
        assert host.file(path).user == "opengram", path
