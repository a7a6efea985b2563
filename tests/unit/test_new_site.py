"""tools/new_site.py: the inventory it writes, read back by ansible-inventory
with the vault it encrypts; what it refuses, and that it overwrites nothing.
(The quick-start test, molecule/preflight, deploys such an inventory over SSH.)"""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OPTIONS = ["--domain", "chat.example.net", "--host", "203.0.113.10", "--ssh-user", "deploy",
           "--proxy", "nginx", "--acme-email", "ops@chat-team.org"]


def new_site(tmp_path, *args):
    env = dict(os.environ, HOME=str(tmp_path / "home"))
    return subprocess.run([sys.executable, str(ROOT / "tools/new_site.py"), *args,
                           "--inventories", str(tmp_path / "inventories")],
                          capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, cwd=tmp_path)


def test_the_written_inventory_reads_back_with_its_vault(tmp_path):
    run = new_site(tmp_path, "mysite", *OPTIONS)
    assert run.returncode == 0, run.stderr
    vault_pass = tmp_path / "home/.config/opengram-deploy/mysite.vault-pass"
    assert stat.S_IMODE(vault_pass.stat().st_mode) == 0o600
    vault = tmp_path / "inventories/mysite/group_vars/opengram/vault.yml"
    assert vault.read_text().startswith("$ANSIBLE_VAULT;"), "the vault is written encrypted"
    assert stat.S_IMODE(vault.stat().st_mode) == 0o600
    listing = subprocess.run(
        ["ansible-inventory", "-i", str(tmp_path / "inventories/mysite"), "--list",
         "--vault-password-file", str(vault_pass)],
        check=True, capture_output=True, text=True, cwd=ROOT).stdout
    data = json.loads(listing)
    assert data["opengram"]["hosts"] == ["chat.example.net"]
    host = data["_meta"]["hostvars"]["chat.example.net"]
    assert host["ansible_host"] == "203.0.113.10"
    assert host["ansible_connection"] == "ssh" and host["ansible_user"] == "deploy" and host["ansible_become"]
    assert (host["opengram_domain"], host["opengram_proxy"]) == ("chat.example.net", "nginx")
    assert host["opengram_acme_email"] == "ops@chat-team.org"
    password = host["vault_opengram_login_password"]
    assert host["opengram_access_users"] == [{"name": "admin", "password": "{{ vault_opengram_login_password }}"}]
    # The password the role accepts (16+ characters, 8 distinct, not the name), printed once.
    assert len(password) >= 16 and len(set(password)) >= 8 and "admin" not in password.lower()
    assert run.stdout.count(password) == 1
    # The next command, as the user types it (paths relative to the checkout and the home directory).
    assert ("ansible-playbook -i inventories/mysite site.yml --vault-password-file "
            "~/.config/opengram-deploy/mysite.vault-pass") in run.stdout
    assert "ssh-keyscan -t ed25519 203.0.113.10" in run.stdout


def test_two_sites_get_different_passwords_and_share_nothing_by_accident(tmp_path):
    assert new_site(tmp_path, "one", *OPTIONS).returncode == 0
    assert new_site(tmp_path, "two", *OPTIONS).returncode == 0
    passes = [(tmp_path / f"home/.config/opengram-deploy/{n}.vault-pass").read_text() for n in ("one", "two")]
    assert passes[0] != passes[1]


def test_an_existing_site_is_never_overwritten(tmp_path):
    assert new_site(tmp_path, "mysite", *OPTIONS).returncode == 0
    vault = tmp_path / "inventories/mysite/group_vars/opengram/vault.yml"
    before = vault.read_bytes()
    run = new_site(tmp_path, "mysite", *OPTIONS)
    assert run.returncode == 2
    assert "exists already" in run.stderr and "nothing was written" in run.stderr
    assert vault.read_bytes() == before


@pytest.mark.parametrize("args, expected", [
    (["--domain", "not a name"], "--domain 'not a name' is not a DNS name"),
    (["--host", "203.0.113"], "--host '203.0.113' is neither an IP address nor a DNS name"),
    (["--proxy", "apache"], "--proxy 'apache' is not supported: use caddy or nginx"),
    (["--acme-email", "nobody"], "--acme-email 'nobody' is not an email address"),
    (["--ssh-user", "Root Admin"], "--ssh-user 'Root Admin' is not a user name"),
])
def test_bad_values_are_refused_before_anything_is_written(tmp_path, args, expected):
    options = list(OPTIONS)
    index = options.index(args[0])
    options[index + 1] = args[1]
    run = new_site(tmp_path, "mysite", *options)
    assert run.returncode == 2 and expected in run.stderr, run.stderr
    assert not (tmp_path / "inventories").exists()
    assert not (tmp_path / "home/.config").exists()


def test_a_missing_value_outside_a_terminal_names_the_option(tmp_path):
    options = OPTIONS[:-2]  # no --acme-email
    run = new_site(tmp_path, "mysite", *options)
    assert run.returncode == 2
    assert "--acme-email is missing (not a terminal, so it cannot be asked)" in run.stderr
    assert not (tmp_path / "inventories").exists()


def test_a_vault_password_file_others_can_read_is_refused(tmp_path):
    loose = tmp_path / "loose.pass"
    loose.write_text("secret\n")
    loose.chmod(0o644)
    run = new_site(tmp_path, "mysite", *OPTIONS, "--vault-password-file", str(loose))
    assert run.returncode == 2 and "can be read by others" in run.stderr and "chmod 600" in run.stderr
    assert not (tmp_path / "inventories").exists()


def test_in_a_terminal_each_missing_value_is_asked_until_it_is_right(monkeypatch):
    sys.path.insert(0, str(ROOT))
    from tools import new_site

    answers = iter(["chat.example.net", "not an address", "203.0.113.10", "deploy", "", "ops@chat-team.org"])
    asked = []

    def fake_input(prompt):
        asked.append(prompt)
        return next(answers)

    monkeypatch.setattr("builtins.input", fake_input)
    args = new_site.argparse.Namespace(domain=None, host=None, ssh_user=None, proxy=None, acme_email=None)
    new_site.ask(args, interactive=True)
    assert (args.domain, args.host, args.ssh_user, args.proxy, args.acme_email) == (
        "chat.example.net", "203.0.113.10", "deploy", "caddy", "ops@chat-team.org")
    assert len(asked) == 6  # the bad address asked again; an empty proxy answer is caddy
