"""Release identity = what was installed, not the version string (issue 26 item 3).

A second tarball of the SAME version (a rebuilt or patched package: the inventory's own
tarball, real or stand-in, packed again with a label in its description) installs a new release beside the old one and restarts into it, keeping every
chat; the inventory's tarball then switches back to the old release without installing it
again and keeps the rebuilt one as the rollback target (even with opengram_releases_keep=1:
the release that ran before the live one is never pruned). Where the scenario runs the data
checks (ogd_test_lifecycle: real-nginx in molecule/real, molecule/upgrade); it ends with the host
as the inventory declares, and runs after every other check (conftest.runs_last): the limited run
builds the rebuilt release on this host, which then has the build tools test_release.py counts.
"""

import gzip
import io
import json
import tarfile

from conftest import release_name, run_playbook, runs_last
from playbook import recap, task_statuses
from test_data import chats, create_chat, health, lifecycle, output, scenario  # noqa: F401 (lifecycle, scenario: fixtures)

RELEASES = "/opt/opengram/releases"
CURRENT = "/opt/opengram/current"
INSTALL_TASK = "opengram_deploy.opengram.opengram : Install Opengram as release %s"
MANIFEST = "/opt/opengram/current/lib/node_modules/@opengramsh/opengram/package.json"


def main_pid(site):
    return site.host.check_output("systemctl show -P MainPID opengram")


def releases(site):
    return set(site.host.check_output("ls -1 %s", RELEASES).split())


def repack(tarball, out_dir, label):
    """`tarball` packed again, its package.json's description ending with "Build: <label>"
    (every other member as it was): another tarball of the same version."""
    out = out_dir / ("relabelled-" + tarball.rsplit("/", 1)[-1])
    with tarfile.open(tarball) as src, io.BytesIO() as buffer:
        with tarfile.open(fileobj=buffer, mode="w") as dst:
            for member in src.getmembers():
                data = src.extractfile(member).read() if member.isfile() else None
                if member.name == "package/package.json":
                    manifest = json.loads(data)
                    manifest["description"] = manifest.get("description", "") + " Build: " + label
                    data = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
                    member.size = len(data)
                dst.addfile(member, io.BytesIO(data) if data is not None else None)
        out.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
    return str(out)


@runs_last
def test_another_tarball_of_the_same_version_is_another_release(site, lifecycle, tmp_path):
    original = site.release
    assert releases(site) == {original}, "this check needs a host with one release (the files before leave one)"
    chat = create_chat(site, "before-the-rebuild")
    rebuilt = repack(site.tarball, tmp_path, "rebuilt")
    # The same lock: the role records the tarball's own integrity for the package.
    new = release_name(site.version, rebuilt, site.locks_dir)
    assert new != original and new.startswith(site.version + "+")
    pid = main_pid(site)

    run = run_playbook("--limit", site.name, "-e", "opengram_npm_tarball=" + rebuilt)
    assert run.returncode == 0, output(run)
    assert task_statuses(run.stdout, INSTALL_TASK % new) == ["changed"], output(run)
    assert site.host.file(CURRENT).linked_to == "%s/%s" % (RELEASES, new)
    assert releases(site) == {original, new}, "the previous release must stay for a rollback"
    assert main_pid(site) != pid, "Opengram was not restarted into the new release"
    assert "Build: rebuilt" in site.host.check_output("cat %s", MANIFEST)
    assert health(site)["version"] == site.version
    assert chat in chats(site)

    # The inventory's tarball again: its release is still complete, so nothing is
    # installed; "current" switches back and Opengram restarts. The rebuilt
    # release ran before the live one: it stays, whatever the pruning says.
    pid = main_pid(site)
    run = run_playbook("--limit", site.name, "-e", "opengram_releases_keep=1")
    assert run.returncode == 0, output(run)
    assert task_statuses(run.stdout, INSTALL_TASK % original) == ["skipping"], output(run)
    assert site.host.file(CURRENT).linked_to == "%s/%s" % (RELEASES, original)
    assert releases(site) == {original, new}, "the rollback target was pruned"
    assert main_pid(site) != pid, "Opengram was not restarted into the inventory's release"
    assert "Build: rebuilt" not in site.host.check_output("cat %s", MANIFEST)
    assert chat in chats(site)

    run = run_playbook("--limit", site.name)
    assert run.returncode == 0, output(run)
    assert recap(run.stdout, site.name)["changed"] == 0, output(run)
