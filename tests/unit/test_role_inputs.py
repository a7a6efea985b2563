"""The proxy roles' inputs an operator sets in the inventory win (issue 30 item 8):
the deploy play of playbooks/opengram.yml sets none of them in its `vars:` (play
vars outrank the inventory); the roles' defaults derive them from the opengram
role's published opengram_layout (its domain and domain_aliases) instead.

Proven with ansible-playbook against localhost: a play with the deploy play's own
`vars:` (read from the file) and the three proxy roles, whose tasks are not run
(only the task that prints the values, by its tag), once with an inventory that
sets the inputs and once with one that does not."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# The site's names: inputs of the proxy roles an operator may set.
NAMES = ("caddy_domain", "caddy_domain_aliases", "nginx_server_names", "nginx_redirect_server_names",
         "certbot_domains")
LAYOUT = {"domain": "chat.example.com", "domain_aliases": ["www.chat.example.com"]}


def deploy_play():
    plays = yaml.safe_load((ROOT / "playbooks/opengram.yml").read_text())
    return next(p for p in plays if p.get("name") == "Deploy Opengram behind its reverse proxy")


def test_the_deploy_play_sets_no_name_of_the_site():
    assert not set(NAMES) & set(deploy_play().get("vars", {}))


def values(tmp_path, inventory_vars):
    play = {
        "hosts": "opengram", "gather_facts": False, "connection": "local",
        "vars": deploy_play()["vars"],
        "roles": [{"role": "opengram_deploy.opengram." + r} for r in ("caddy", "nginx", "certbot")],
        "tasks": [
            # What the opengram role publishes (tasks/layout.yml).
            {"name": "Publish the layout", "ansible.builtin.set_fact": {"opengram_layout": LAYOUT},
             "tags": ["ogd_print"]},
            {"name": "Print", "ansible.builtin.debug": {"msg": "OGD{{ %s | to_json }}OGD" % (
                "{" + ", ".join("'%s': %s" % (n, n) for n in NAMES) + "}")}, "tags": ["ogd_print"]},
        ],
    }
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([play]))
    inventory = tmp_path / "hosts.json"
    inventory.write_text(json.dumps({"opengram": {"hosts": {"localhost": dict(
        inventory_vars, ansible_python_interpreter="/usr/bin/python3")}}}))
    run = subprocess.run(["ansible-playbook", "-i", str(inventory), str(playbook), "--tags", "ogd_print",
                          # Not the roles' argument checks either (always): their other inputs are not set here.
                          "--skip-tags", "always"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.environ.get(
                             "ANSIBLE_COLLECTIONS_PATH", str(ROOT / "collections"))))
    assert run.returncode == 0, run.stdout + run.stderr
    text = run.stdout.replace("\\\"", "\"")
    return json.loads(text[text.index("OGD") + 3:text.rindex("OGD")])


def test_without_inventory_values_the_names_come_from_the_layout(tmp_path):
    assert values(tmp_path, {"opengram_domain": "chat.example.com"}) == {
        "caddy_domain": "chat.example.com", "caddy_domain_aliases": ["www.chat.example.com"],
        "nginx_server_names": ["chat.example.com"], "nginx_redirect_server_names": ["www.chat.example.com"],
        "certbot_domains": ["chat.example.com", "www.chat.example.com"]}


@pytest.mark.parametrize("name, value", [
    ("caddy_domain", "site.example.org"),
    ("caddy_domain_aliases", ["alias.example.org"]),
    ("nginx_server_names", ["site.example.org", "other.example.org"]),
    ("nginx_redirect_server_names", []),
    ("certbot_domains", ["site.example.org", "other.example.org"]),
])
def test_an_inventory_value_wins(tmp_path, name, value):
    assert values(tmp_path, {"opengram_domain": "chat.example.com", name: value})[name] == value
