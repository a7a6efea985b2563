"""Unit tests for the pure parts of tools/sandbox.py (no docker, no network)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tools import sandbox  # noqa: E402
from tools.ogd import roles  # noqa: E402
from tools.sandbox import Choice, SandboxError  # noqa: E402

PKG, VER = "@opengramsh/opengram", "0.2.1"


def npm(rc: int, out: str = "", err: str = "") -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(["npm", "view"], rc, out, err)


# --- reading settings -------------------------------------------------------------


@pytest.mark.parametrize("line, expected", [
    ('opengram_version: "0.2.1"', "0.2.1"),
    ("opengram_version: '0.2.1'  # pinned", "0.2.1"),
    ("opengram_version: 0.2.1", "0.2.1"),
    ("opengram_version: 0.2.1   # pinned", "0.2.1"),
    ("opengram_version:   1.0.0-rc.1\t", "1.0.0-rc.1"),
    ('opengram_version: ""', ""),
    ("opengram_version:", None),
])
def test_top_level_scalar(line, expected):
    assert roles.scalar(f"---\n# c\nother: 1\n{line}\nlast: x\n", "opengram_version") == expected


def test_yaml_scalar_only_top_level_and_exact_key():
    text = "nested:\n  opengram_version: 9.9.9\nopengram_version_extra: 1.1.1\n"
    assert roles.scalar(text, "opengram_version") is None


def test_role_default_version_and_package_are_read():
    assert sandbox.read_setting(sandbox.ROLE_DEFAULTS, "opengram_npm_package") == PKG
    version = sandbox.read_setting(sandbox.ROLE_DEFAULTS, "opengram_version")
    assert version.count(".") == 2 and version[0].isdigit()


def test_sandbox_domain_is_read_and_is_not_a_public_name():
    domain = sandbox.read_setting(sandbox.GROUP_VARS, "opengram_domain")
    assert domain == "opengram.sandbox.test"


def test_missing_setting_is_a_clear_error(tmp_path):
    f = tmp_path / "x.yml"
    f.write_text("---\nfoo: bar\n")
    with pytest.raises(SandboxError, match="opengram_domain not found"):
        sandbox.read_setting(f, "opengram_domain")


def test_inventory_host_is_the_container():
    text = (REPO_ROOT / sandbox.INVENTORY).read_text()
    assert f"        {sandbox.NAME}:\n" in text
    assert "ansible_connection: community.docker.docker" in text
    assert "ansible_become: false" in text


# --- real package or stand-in ---------------------------------------------------------


def test_registry_serves_it_means_real():
    choice = sandbox.choose_package(PKG, VER, None, npm(0, "0.2.1\n"))
    assert choice == Choice(False, f"the npm registry serves {PKG}@{VER}")


def test_404_means_standin():
    err = ("npm error code E404\nnpm error 404 Not Found - GET https://registry.npmjs.org/"
           "@opengramsh%2fopengram\n")
    choice = sandbox.choose_package(PKG, VER, None, npm(1, "", err))
    assert choice.standin and "does not serve" in choice.reason and "404" in choice.reason


def test_unknown_version_means_standin():
    # older npm: exit 0 and nothing printed when the package exists but the version does not
    assert sandbox.choose_package(PKG, VER, None, npm(0, "\n")).standin


def test_other_npm_failure_is_an_error_not_a_silent_standin():
    err = "npm error code SELF_SIGNED_CERT_IN_CHAIN\nnpm error self-signed certificate in certificate chain\n"
    with pytest.raises(SandboxError, match="--standin or --real") as exc:
        sandbox.choose_package(PKG, VER, None, npm(1, "", err))
    assert "self-signed" in str(exc.value)


def test_a_different_version_answer_is_not_real():
    with pytest.raises(SandboxError):
        sandbox.choose_package(PKG, VER, None, npm(0, "0.2.10"))


@pytest.mark.parametrize("force, standin", [("standin", True), ("real", False)])
def test_force_wins_without_asking(force, standin):
    choice = sandbox.choose_package(PKG, VER, force, None)
    assert choice.standin is standin and f"--{force}" in choice.reason


def test_banner_is_loud_for_the_standin_only():
    loud = sandbox.banner(Choice(True, "the npm registry does not serve x (404)"), PKG, VER)
    assert "SANDBOX RUNS THE OFFLINE STAND-IN (test fixture), NOT OPENGRAM" in loud
    assert "does not serve x (404)" in loud
    real = sandbox.banner(Choice(False, "serves"), PKG, VER)
    assert "STAND-IN" not in real and f"REAL {PKG}@{VER}" in real


# --- commands ----------------------------------------------------------------------------


def test_container_run_cmd_matches_the_molecule_platforms():
    cmd = sandbox.container_run_cmd("opengram.sandbox.test")
    assert cmd[:3] == ["docker", "run", "--detach"]
    joined = " ".join(cmd)
    for flag in ("--name ogd-sandbox", "--network ogd-sandbox",
                 "--network-alias opengram.sandbox.test", "--label ogd.sandbox=1",
                 "--cap-add SYS_ADMIN", "--cap-add NET_ADMIN",
                 "--security-opt seccomp=unconfined", "--security-opt apparmor=unconfined",
                 "--tmpfs /run", "--tmpfs /run/lock", "-v /sys/fs/cgroup:/sys/fs/cgroup:rw"):
        assert flag in joined
    assert "--privileged" not in cmd
    assert cmd[-2:] == ["ogd-base:trixie", "/lib/systemd/systemd"]


def test_network_create_cmd_is_labelled():
    assert sandbox.network_create_cmd() == [
        "docker", "network", "create", "--label", "ogd.sandbox=1", "ogd-sandbox"]


def test_playbook_cmd_real_and_standin(tmp_path):
    assert sandbox.playbook_cmd(None) == [
        "ansible-playbook", "site.yml", "-i", "inventories/sandbox/hosts.yml"]
    tgz = tmp_path / "dir with space" / "opengramsh-opengram-0.2.1.tgz"
    cmd = sandbox.playbook_cmd(tgz)
    assert cmd[-2] == "-e"
    assert json.loads(cmd[-1]) == {"opengram_npm_tarball": str(tgz)}


def test_curl_cmd(tmp_path):
    cmd = sandbox.curl_cmd("opengram.sandbox.test", "172.18.0.2", tmp_path / "root.crt")
    assert cmd[0] == "curl" and "--insecure" not in cmd and "-k" not in cmd
    assert cmd[cmd.index("--cacert") + 1] == str(tmp_path / "root.crt")
    assert cmd[cmd.index("--resolve") + 1] == "opengram.sandbox.test:443:172.18.0.2"
    assert cmd[-1] == "https://opengram.sandbox.test/api/v1/health"


# --- output parsing ----------------------------------------------------------------------


def test_recap_lines_takes_the_last_recap():
    out = ("PLAY RECAP ***\nold : ok=1 changed=1\n\nTASK [x]\n"
           "PLAY RECAP *********\n"
           "ogd-sandbox                : ok=57   changed=0    unreachable=0    failed=0\n"
           "\nThursday 27 November 2026  13:50:01 +0000 (0:00:00.5)  0:01:02.3 *****\n")
    assert sandbox.recap_lines(out) == [
        "ogd-sandbox : ok=57 changed=0 unreachable=0 failed=0"]
    assert sandbox.recap_lines("no recap") == []


@pytest.mark.parametrize("body, ok", [
    ('{"service":"opengram","status":"ok","version":"0.2.1","uptime":3}', True),
    ('{"status":"starting"}', False),
    ("<html>502</html>", False),
    ("[]", False),
])
def test_health_ok(body, ok):
    assert sandbox.health_ok(body) is ok


def _pack(tmp_path, name="@opengramsh/opengram", version="0.2.1"):
    import io
    import tarfile
    data = json.dumps({"name": name, "version": version}).encode()
    path = tmp_path / "pkg.tgz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("package/package.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_package_option_reads_the_version_from_the_tarball(tmp_path):
    choice = sandbox.packed_release(_pack(tmp_path, version="9.8.7"), "@opengramsh/opengram")
    assert (choice.standin, choice.version) == (False, "9.8.7")
    assert "REAL @opengramsh/opengram@9.8.7" in sandbox.banner(choice, "@opengramsh/opengram", "0.2.1")
    cmd = sandbox.playbook_cmd(choice.tarball, choice.version)
    assert json.loads(cmd[cmd.index("-e") + 1]) == {"opengram_npm_tarball": str(choice.tarball),
                                                    "opengram_version": "9.8.7"}


def test_package_option_refuses_another_package_or_a_missing_file(tmp_path):
    with pytest.raises(sandbox.SandboxError, match="not @opengramsh/opengram"):
        sandbox.packed_release(_pack(tmp_path, name="left-pad"), "@opengramsh/opengram")
    with pytest.raises(sandbox.SandboxError, match="no such file"):
        sandbox.packed_release(tmp_path / "absent.tgz", "@opengramsh/opengram")


def test_the_sandbox_login_is_a_private_file_passed_as_a_file(tmp_path):
    path = sandbox.ensure_access_file(tmp_path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    text = path.read_text()
    assert sandbox.ensure_access_file(tmp_path).read_text() == text  # made once, reused
    password = text.split("password: ")[1].strip()
    assert len(password) >= 24
    cmd = sandbox.playbook_cmd(None, None, path)
    assert cmd[-2:] == ["-e", "@" + str(path)] and password not in " ".join(cmd)
