"""What a host runs is decided by the repository (issue 26): the release directory the role
installed is the one the inventory's version, tarball and lock name; the tree npm installed is
exactly the lock (every package at the lock's version and integrity: nothing resolved on the
day of the install); hosts of one platform that install one release hold identical trees,
byte for byte. Read-only checks, on every Opengram host of the scenario."""

import json

import pytest

from playbook import recap
from conftest import ansible_json, release_filters, release_name, role_allow_scripts

CURRENT = "/opt/opengram/current"
PACKAGE = "@opengramsh/opengram"

# A digest of a directory tree: every path (sorted), its kind, its mode and its
# content (files) or target (links). Run on the host with python3 (no other tool).
TREE_DIGEST = r"""
import hashlib, os, stat, sys
root = sys.argv[1]
total, count = hashlib.sha256(), 0
for top, dirs, files in os.walk(root):
    dirs.sort()
    for name in sorted(dirs + files):
        path = os.path.join(top, name)
        info = os.lstat(path)
        rel = os.path.relpath(path, root).encode()
        if stat.S_ISLNK(info.st_mode):
            entry = b"L " + rel + b" " + os.readlink(path).encode()
        elif stat.S_ISDIR(info.st_mode):
            entry = b"D " + rel + b" %o" % stat.S_IMODE(info.st_mode)
        else:
            with open(path, "rb") as fh:
                entry = b"F " + rel + b" %o " % stat.S_IMODE(info.st_mode) + hashlib.sha256(fh.read()).hexdigest().encode()
            count += 1
        total.update(entry + b"\n")
print(total.hexdigest(), count)
"""


def tree_digest(host, path):
    """(sha256 over the tree, number of files) of `path` on `host`."""
    digest, count = host.check_output("python3 -c %s %s", TREE_DIGEST, path).split()
    return digest, int(count)


def read_json(host, path):
    return json.loads(host.check_output("cat %s", path))


def test_the_live_release_is_the_one_the_inventory_names(site):
    assert site.host.file(CURRENT).linked_to == "/opt/opengram/releases/" + site.release


def test_the_installed_tree_is_the_lock_the_repository_holds(site):
    """The lock on the host is the repository's, rendered for this install; npm's record of what
    it installed (node_modules/.package-lock.json) names every package at the lock's version
    and integrity."""
    filters = release_filters()
    with open("%s/%s/package-lock.json" % (site.locks_dir, site.version), encoding="utf-8") as fh:
        repository_lock = json.load(fh)
    tarball = site.tarball
    plan = filters.opengram_release(repository_lock, PACKAGE, site.version,
                                    tarball.rsplit("/", 1)[-1] if tarball else "",
                                    filters.opengram_file_integrity(tarball) if tarball else "", role_allow_scripts())
    lib = "/opt/opengram/releases/%s/lib" % site.release
    assert read_json(site.host, lib + "/package-lock.json") == plan["lock"]
    assert read_json(site.host, lib + "/package.json") == plan["package_json"]
    installed = read_json(site.host, lib + "/node_modules/.package-lock.json")["packages"]
    locked = plan["lock"]["packages"]
    assert installed, "npm recorded no installed package"
    for path, meta in installed.items():
        assert path in locked, "%s is installed but not in the lock" % path
        assert (meta.get("version"), meta.get("integrity")) == (locked[path].get("version"), locked[path].get("integrity")), path
    # Every package the lock names for every platform is there, except the
    # optional ones for other platforms (sharp's prebuilt binaries per OS/CPU).
    missing = [p for p, m in locked.items() if p and p not in installed and not m.get("optional")]
    assert not missing, "in the lock but not installed: %s" % missing


def platform_groups(deployment):
    """{(platform, live release): [(host name, testinfra host)]} of the scenario's Opengram hosts."""
    import testinfra

    groups = {}
    for name in sorted(deployment):
        host = testinfra.get_host("docker://" + name)
        platform = host.check_output(
            ". /etc/os-release; echo \"$ID $VERSION_ID $(uname -m) node-abi-$(node -p process.versions.modules)\"")
        groups.setdefault((platform, host.file(CURRENT).linked_to), []).append((name, host))
    return groups


def test_one_host_per_platform_built_the_release_the_others_have_no_npm_nor_compiler(deployment):
    """opengram_build_once: of the hosts of one platform that installed one release, one built it
    (npm and g++ installed); the others received its tree and have neither. Only where the hosts
    start without those packages (ogd_test_bare_hosts: the bare base image of `real`)."""
    if not any(ansible_json("opengram", "ogd_test_bare_hosts | default(false) | bool").values()):
        pytest.skip("the hosts start from an image with npm and g++ in it (ogd_test_bare_hosts is off)")
    for key, members in platform_groups(deployment).items():
        have = {name: sorted(p for p in ("npm", "g++")
                             if host.run("dpkg-query -W -f '${db:Status-Status}' %s", p).stdout == "installed")
                for name, host in members}
        builders = [name for name, packages in have.items() if packages]
        assert len(builders) == 1, "%s: npm/g++ per host %s (exactly one host should have built)" % (key, have)
        # NodeSource's nodejs has npm inside: there the builder adds only the compiler.
        nodesource = dict(members)[builders[0]].file("/etc/apt/sources.list.d/nodesource.sources").exists
        assert have[builders[0]] == (["g++"] if nodesource else ["g++", "npm"]), have


def test_hosts_of_one_platform_hold_identical_release_trees(deployment):
    """Every host of one platform (distribution release, architecture, Node.js ABI) that runs
    one release holds the same bytes: the lock decides, not the host or the hour."""
    groups = {key: [(name, tree_digest(host, key[1])) for name, host in members]
              for key, members in platform_groups(deployment).items()}
    shared = {key: members for key, members in groups.items() if len(members) > 1}
    if not shared:
        pytest.skip("no two hosts of this scenario run one release on one platform: %s" % sorted(groups))
    for (platform, release), members in shared.items():
        digests = {digest for _, digest in members}
        assert len(digests) == 1, "%s on %s differs between hosts: %s" % (release, platform, members)
        (_, count), = digests
        assert count > 0



def test_a_registry_answer_that_does_not_match_the_lock_fails_and_changes_nothing(deployment, tmp_path):
    """A lock whose integrity for one dependency is not what the registry serves (as a registry
    serving other bytes would be): npm ci refuses it, the run fails naming EINTEGRITY and the
    lock, and the host keeps running the release it ran (one host: the check is the same on all)."""
    import testinfra

    from conftest import run_playbook
    from test_data import output

    name = sorted(deployment)[0]
    facts = deployment[name]
    with open("%s/%s/package-lock.json" % (facts["locks_dir"], facts["version"]), encoding="utf-8") as fh:
        lock = json.load(fh)
    dependencies = sorted(p for p, meta in lock["packages"].items()
                          if p and p != "node_modules/" + PACKAGE and not meta.get("optional"))
    if not dependencies:
        pytest.skip("this scenario's package has no dependency from the registry (the stand-in)")
    victim = "node_modules/hono" if "node_modules/hono" in dependencies else dependencies[0]
    lock["packages"][victim]["integrity"] = "sha512-" + "A" * 86 + "=="
    locks = tmp_path / "locks" / facts["version"]
    locks.mkdir(parents=True)
    (locks / "package-lock.json").write_text(release_filters().canonical_json(lock))
    host = testinfra.get_host("docker://" + name)
    before = (host.file(CURRENT).linked_to, host.check_output("systemctl show -P MainPID opengram"))

    refused = "/opt/opengram/releases/" + release_name(facts["version"], facts["tarball"], str(tmp_path / "locks"))
    try:
        run = run_playbook("--limit", name, "-e", "opengram_npm_locks_dir=%s" % (tmp_path / "locks"))
        assert run.returncode != 0, output(run)
        text = " ".join(output(run).split())
        assert "EINTEGRITY" in text and "nothing switched" in text, output(run)
        assert str(locks / "package-lock.json") in text, output(run)
        assert (host.file(CURRENT).linked_to, host.check_output("systemctl show -P MainPID opengram")) == before
        assert not host.file(refused).exists
    finally:
        host.run("rm -rf %s.partial", refused)  # the staging directory npm ci failed in


def test_a_database_the_release_cannot_open_is_refused_before_anything_changes(deployment):
    """A release whose lock has better-sqlite3 keeps its data in SQLite: a data/opengram.db that is
    no SQLite database (here the stand-in's JSON document, as a host switched from the stand-in
    to the real release has) is refused before anything on the host changes, with the way out;
    with the database back, Opengram runs as before. One host (the check is the same on all)."""
    import testinfra

    from conftest import run_playbook
    from test_data import output

    name = sorted(deployment)[0]
    facts = deployment[name]
    with open("%s/%s/package-lock.json" % (facts["locks_dir"], facts["version"]), encoding="utf-8") as fh:
        lock = json.load(fh)
    if "node_modules/better-sqlite3" not in lock["packages"]:
        pytest.skip("this scenario's package keeps no SQLite database (the stand-in's JSON document)")
    host = testinfra.get_host("docker://" + name)
    db = "/var/lib/opengram/data/opengram.db"
    before = host.file(CURRENT).linked_to
    host.check_output("systemctl stop opengram")
    host.check_output("mv %s %s.aside", db, db)
    try:
        host.check_output("printf '%%s' '{\"migrations\":[\"0001_init.sql\"],\"chats\":{}}' > %s && chown opengram: %s",
                          db, db)
        run = run_playbook("--limit", name)
        assert run.returncode != 0, output(run)
        text = " ".join(output(run).split())
        assert "%s on %s is not an SQLite database" % (db, name) in text, output(run)
        assert "Nothing was changed. Move the file away" in text, output(run)
        assert recap(run.stdout, name)["changed"] == 0, output(run)
        assert host.file(CURRENT).linked_to == before
        assert not host.service("opengram").is_running, "the run started Opengram on a file it cannot open"
    finally:
        host.run("mv %s.aside %s", db, db)
        host.run("systemctl start opengram")
    host.check_output("for i in $(seq 300); do curl -fsS http://127.0.0.1:%s/api/v1/health && exit 0; sleep 0.1; done; exit 1",
                      str(facts["port"]))
