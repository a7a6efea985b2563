"""Production-safe defaults: host keys checked, the example production
inventory reaches its hosts over SSH with become."""

import configparser
import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ansible_cfg_leaves_host_key_checking_on():
    config = configparser.ConfigParser()
    config.read(ROOT / "ansible.cfg")
    assert config.get("defaults", "host_key_checking", fallback="True").lower() in ("true", "yes", "1")


def test_no_inventory_outside_the_sandbox_turns_host_keys_off():
    for path in (ROOT / "inventories").rglob("*"):
        if path.is_file() and "sandbox" not in path.parts:
            text = path.read_text().lower()
            for off in ("stricthostkeychecking=no", "host_key_checking: false", "userknownhostsfile=/dev/null"):
                assert off not in text, (path, off)


def test_production_example_uses_ssh_with_become():
    listing = subprocess.run(["ansible-inventory", "-i", str(ROOT / "inventories/production/hosts.yml"), "--list"],
                             check=True, capture_output=True, text=True, cwd=ROOT).stdout
    hostvars = json.loads(listing)["_meta"]["hostvars"]
    assert len(hostvars) == 3
    for host, values in hostvars.items():
        assert values.get("ansible_connection") == "ssh", host
        assert values.get("ansible_become") is True, host
        assert values.get("ansible_user") not in (None, "root"), host


def test_ansible_cfg_names_no_default_inventory():
    config = configparser.ConfigParser()
    config.read(ROOT / "ansible.cfg")
    assert not config.has_option("defaults", "inventory")


def test_every_playbook_starts_with_the_inventory_check():
    import yaml
    for path in sorted((ROOT / "playbooks").glob("*.yml")):
        if path.name in ("inventory.yml", "site.yml"):
            continue
        first = yaml.safe_load(path.read_text())[0]
        assert first.get("ansible.builtin.import_playbook") == "inventory.yml", path


def test_a_run_without_an_inventory_stops_before_anything_with_what_to_pass():
    import os
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_INVENTORY"}
    run = subprocess.run(["ansible-playbook", "site.yml"], cwd=ROOT, capture_output=True, text=True, env=env,
                         timeout=300)
    text = run.stdout + run.stderr
    assert run.returncode != 0, text
    assert "No host is in the group opengram" in text and "-i inventories/mysite" in text, text
    # Nothing after the check ran: not the preflight, not the deploy.
    assert "Validate the inventory" not in run.stdout, run.stdout


def _run_without_bcrypt(tmp_path, users):
    """site.yml with an inventory of one unreachable host, its Python unable to import bcrypt."""
    import os
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text("import sys\nsys.modules['bcrypt'] = None\n")
    inventory = tmp_path / "hosts.json"
    inventory.write_text(json.dumps({"opengram": {"hosts": {"nohost.invalid": {
        "ansible_host": "192.0.2.1", "ansible_ssh_common_args": "-o ConnectTimeout=1",
        "opengram_domain": "chat.example.org", "opengram_access_users": users}}}}))
    env = dict(os.environ, PYTHONPATH=str(block))
    return subprocess.run(["ansible-playbook", "-i", str(inventory), "site.yml"], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=300)


def test_a_controller_without_bcrypt_stops_before_any_host_when_a_password_is_to_be_hashed(tmp_path):
    run = _run_without_bcrypt(tmp_path, [{"name": "alice", "password": "correct horse battery staple"}])
    text = run.stdout + run.stderr
    assert run.returncode != 0, text
    assert "has no bcrypt module" in text and "-r requirements.txt" in text, text
    assert "correct horse" not in text
    assert "Gathering Facts" not in run.stdout, "a host was contacted: " + run.stdout


def test_hashes_given_need_no_bcrypt_on_the_controller(tmp_path):
    hashed = "$2b$10$" + "a" * 53
    run = _run_without_bcrypt(tmp_path, [{"name": "alice", "password_hash": hashed}])
    assert "TASK [Stop when the controller cannot hash the passwords (bcrypt)]" in run.stdout
    assert "has no bcrypt module" not in run.stdout + run.stderr
    # The run went on to the host (unreachable here).
    assert "Gathering Facts" in run.stdout, run.stdout


def _run_with_vault_refs(tmp_path, vault_vars):
    """site.yml on a tools/new_site.py-shaped inventory of one unreachable host whose
    group variables refer to vault_* names; `vault_vars` is what its vault file defines."""
    import yaml
    inventory = tmp_path / "mysite"
    (inventory / "group_vars/opengram").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"opengram": {"hosts": {"nohost.invalid": {
        "ansible_host": "192.0.2.1", "ansible_ssh_common_args": "-o ConnectTimeout=1",
        "opengram_domain": "chat.example.org"}}}}))
    (inventory / "group_vars/opengram/main.yml").write_text(yaml.safe_dump({
        "opengram_access_users": [{"name": "alice", "password": "{{ vault_alice_password }}"}],
        "opengram_instance_secret": "{{ vault_instance_secret }}",
        "opengram_public_base_url": "https://{{ opengram_domain }}",
    }))
    (inventory / "group_vars/opengram/vault.yml").write_text(yaml.safe_dump(vault_vars))
    return subprocess.run(["ansible-playbook", "-i", str(inventory), "site.yml"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_a_vault_variable_the_inventory_refers_to_but_nobody_defined_is_named_before_any_host(tmp_path):
    run = _run_with_vault_refs(tmp_path, {"vault_alice_password": "s3cret-never-shown-anywhere"})
    text = run.stdout + run.stderr
    assert run.returncode != 0, text
    assert ("On nohost.invalid, opengram_instance_secret refers to vault_instance_secret, which is not defined."
            in " ".join(text.split())), text
    assert "vault_alice_password" not in text and "s3cret-never-shown" not in text, text
    assert "Gathering Facts" not in run.stdout, "a host was contacted: " + run.stdout


def test_a_vault_variable_deep_in_a_list_is_named_too(tmp_path):
    run = _run_with_vault_refs(tmp_path, {"vault_instance_secret": "og_" + "x" * 40})
    text = " ".join((run.stdout + run.stderr).split())
    assert "opengram_access_users[0] refers to vault_alice_password, which is not defined" in text, text
    assert "og_xxxx" not in text
    assert "Gathering Facts" not in run.stdout


def test_vault_variables_all_defined_let_the_run_go_on(tmp_path):
    run = _run_with_vault_refs(tmp_path, {"vault_instance_secret": "og_" + "x" * 40,
                                          "vault_alice_password": "s3cret-never-shown-anywhere"})
    assert "TASK [Stop when a vault variable the inventory refers to is not defined]" in run.stdout
    assert "which is not defined" not in run.stdout + run.stderr
    assert "Gathering Facts" in run.stdout, run.stdout
    assert "s3cret-never-shown" not in run.stdout + run.stderr


def test_ansible_cfg_needs_no_collection_to_run():
    """A fresh clone with requirements.txt alone runs without a warning: no callback or
    plugin of a collection named in ansible.cfg (the roles use none)."""
    config = configparser.ConfigParser()
    config.read(ROOT / "ansible.cfg")
    for section in config.sections():
        for key, value in config.items(section):
            names = [v.strip() for v in value.split(",")]
            for name in names:
                if name.count(".") >= 2 and not name.startswith("ansible.builtin."):
                    assert key == "collections_path", (section, key, value)
