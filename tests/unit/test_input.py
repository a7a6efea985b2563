"""The preflight's input checks (plugins/filter/opengram_input.py, and
opengram_access.py for the access settings)."""

import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("opengram_input", ROOT / "plugins/filter/opengram_input.py")
checks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(checks)
access_spec = importlib.util.spec_from_file_location("opengram_access",
                                                     ROOT / "plugins/filter/opengram_access.py")
access = importlib.util.module_from_spec(access_spec)
access_spec.loader.exec_module(access)



def test_the_defaults_pass(values):
    assert checks.opengram_input_problems(values) == []


def test_every_variable_of_every_role_is_known():
    names = set(checks._specs())
    for role in ("opengram", "caddy", "nginx", "certbot"):
        defaults = yaml.safe_load((ROOT / "roles" / role / "defaults/main.yml").read_text())
        assert set(defaults) <= names, (role, set(defaults) - names)


@pytest.mark.parametrize("change, expected", [
    ({"opengram_port": 22}, "is a privileged port"),
    ({"opengram_port": 443}, "opengram_port='443' collides with the proxy (caddy listens on 80 and 443)"),
    ({"opengram_port": "abc"}, "opengram_port='abc' is not a TCP port"),
    ({"opengram_upload_max_bytes": "50MB"}, "(no unit)"),
    ({"opengram_env_extra": {"OPENGRAM_PUBLIC_BASE_URL": "https://x.example"}}, "which the playbook owns"),
    ({"opengram_env_extra": {"A": "one\ntwo"}}, "must be a single-line string"),
    ({"opengram_config_extra": {"maxUploadBytes": 1}}, "opengram_config_extra sets maxUploadBytes"),
    ({"opengram_trusted_proxies": ["0.0.0.0/1", "128.0.0.0/1"]}, "covers every IPv4 address"),
    ({"opengram_user": "opengram\n"}, "is not a system user name"),
    ({"opengram_home": "/var/lib/"}, "is a system directory"),
    ({"opengram_config_dir": "/etc/nginx"}, "is a system directory"),
    ({"opengram_backup_dir": "/etc/letsencrypt/"}, "is a system directory"),
    ({"opengram_home": "/var/lib/../etc"}, "is not a plain absolute path"),
    ({"opengram_config_dir": "/var/lib/opengram/etc"}, "overlap"),
    ({"opengram_firewall": "maybe"}, "is not a boolean"),
    ({"opengram_selfcheck_sse_seconds": 0}, "is out of range"),
    ({"opengram_selfcheck_cert_min_fraction": 0}, "opengram_selfcheck_cert_min_fraction=0 is out of range"),
    ({"opengram_selfcheck_cert_min_fraction": 1.5}, "is out of range"),
    ({"opengram_selfcheck_cert_min_days": -1}, "opengram_selfcheck_cert_min_days=-1 is out of range"),
    ({"opengram_selfcheck_local_ca_root": "root.crt"}, "is not an absolute path of a file on the Opengram host"),
    ({"opengram_releases_keep": -1}, "opengram_releases_keep=-1 is out of range"),
    ({"opengram_agents": [{"id": "a", "name": "A"}, {"id": "a", "name": "B"}]}, "is listed twice"),
    ({"opengram_selfcheck_addresses": ["host.example"]}, "is not an IP address"),
    ({"opengram_instance_secret": "has a space in it, 30 chars"}, "too weak or has spaces"),
    ({"nginx_login_check_rate": "6r/min"}, "nginx_login_check_rate='6r/min' is not a rate"),
    ({"nginx_login_session_lifetime": 30}, "nginx_login_session_lifetime"),
    ({"nginx_auth_failure_rate": "6r/m"}, "nginx_auth_failure_rate was renamed nginx_login_check_rate"),
    ({"caddy_basic_auth_realm": 'Open"gram'}, "is not a realm"),
    ({"certbot_cert_name": "../x"}, "is not a certificate lineage name"),
    ({"opengram_acces_modes": ["password"]}, "did you mean opengram_access_modes?"),
    ({"opengram_port": "3000 "}, "opengram_port='3000 ' is not a TCP port"),
    ({"opengram_user": "root"}, "opengram_user='root' is a user of the system or of another service"),
    ({"opengram_user": "www-data"}, "a purging uninstall removes it"),
    ({"opengram_group": "sudo"}, "opengram_group='sudo' is a group of the system or of another service"),
    ({"opengram_service_name": "opengram-backup"}, "is the name of another unit this role writes"),
    ({"opengram_trusted_proxies": ["::ffff:0:0/96"]}, "covers every IPv4 address"),
    ({"opengram_trusted_proxies": ["::ffff:0.0.0.0/97", "::ffff:128.0.0.0/97"]}, "covers every IPv4 address"),
    ({"opengram_serial": 0}, "opengram_serial=0 is not a batch size"),
    ({"opengram_serial": "150%"}, "a percentage from 1% to 100%"),
    ({"opengram_serial": ["1", "abc"]}, "is not a batch size"),
    ({"opengram_instance_secret": "a" * 30}, "8 of them different"),
    ({"caddy_acme_email": "ops@example.org"},
     "caddy_acme_email='ops@example.org' is set by the playbook (playbooks/opengram.yml: caddy_acme_email: "
     "{{ opengram_acme_email }}), which outranks the inventory: this value would be ignored. Remove it and set "
     "opengram_acme_email instead."),
    ({"nginx_upstream_port": 8080}, "Remove it and set opengram_port instead."),
    ({"opengram_domain_aliases": "www.chat.example.com"}, "opengram_domain_aliases='www.chat.example.com' is not a list"),
    ({"opengram_domain_aliases": ["www.chat.example.com", "bad_name!"]},
     "opengram_domain_aliases=['www.chat.example.com', 'bad_name!']: 'bad_name!' is not a valid DNS name. List the "
     "fully qualified names that should redirect to opengram_domain, e.g. opengram_domain_aliases: "
     "[www.chat.example.com]"),
    ({"opengram_domain_aliases": ["localhost"]}, "'localhost' is not a valid DNS name"),
    ({"opengram_domain_aliases": ["Chat.Example.com"]},
     "opengram_domain_aliases=['Chat.Example.com'] lists opengram_domain='chat.example.com' itself. Remove it"),
    ({"opengram_domain_aliases": ["www.chat.example.com", "WWW.chat.example.com"]},
     "lists 'www.chat.example.com' more than once (names are compared without case). List each name once."),
])
def test_each_bad_value_is_named_with_its_fix(values, change, expected):
    values.update(change)
    problems = checks.opengram_input_problems(values)
    assert any(expected in p for p in problems), problems


def test_secrets_are_named_never_shown(values):
    values.update(opengram_instance_secret="short", opengram_env_extra={"OPENGRAM_INSTANCE_SECRET": "og_topsecret\nx"})
    text = " ".join(checks.opengram_input_problems(values))
    assert "opengram_instance_secret" in text and "short" not in text and "og_topsecret" not in text


def test_the_port_of_another_service_is_refused_but_our_own_is_not(values):
    sockets = ("LISTEN 0 511 0.0.0.0:8080 0.0.0.0:* uid:33 ino:5 sk:1\n"
               "LISTEN 0 511 *:3000 *:* uid:999 ino:6 sk:2\n")
    assert checks.opengram_input_problems(values, {"sockets": sockets, "uid": "999"}) == []
    values["opengram_port"] = 8080
    problems = checks.opengram_input_problems(values, {"sockets": sockets, "uid": "999"})
    assert any("already in use on this host by another service (0.0.0.0:8080)" in p for p in problems), problems
    # Before the first run the service user does not exist: every listener is another service.
    values["opengram_port"] = 3000
    assert checks.opengram_input_problems(values, {"sockets": sockets, "uid": ""})


@pytest.mark.parametrize("change, expected", [
    ({"opengram_backup_offsite_repository": "sftp:backup@host.example:/srv/restic"},
     "opengram_backup_offsite_password (value not shown) has fewer than 16"),
    ({"opengram_backup_offsite_repository": "sftp:backup@host.example:/srv/restic",
      "opengram_backup_offsite_password": "0123456789abcdefXYZ"}, "opengram_backup_offsite_sftp_key is empty"),
    ({"opengram_backup_offsite_repository": "s3:bucket"}, "is not a restic repository"),
    ({"opengram_backup_offsite_repository": "/mnt/x'; rm -rf /"}, "is not a restic repository"),
    ({"opengram_restore_offsite_snapshot": "latest"}, "needs opengram_backup_offsite_repository"),
    ({"opengram_backup_schedule": "daily\nExecStart=/bin/sh"}, "is not a systemd calendar time"),
])
def test_offsite_and_schedule_input(values, change, expected):
    values.update(change)
    problems = checks.opengram_input_problems(values)
    assert any(expected in p for p in problems), problems


def test_the_site_s_names_may_be_set_in_the_inventory(values):
    """The proxy roles' defaults derive them (tests/unit/test_role_inputs.py): not refused."""
    values.update(caddy_domain="chat.example.com", caddy_domain_aliases=[], nginx_server_names=["chat.example.com"],
                  nginx_redirect_server_names=[], certbot_domains=["chat.example.com"])
    assert checks.opengram_input_problems(values) == []


def test_a_play_set_secret_is_named_not_shown(values):
    values["caddy_basic_auth_users"] = [{"name": "alice", "hash": "$2b$10$" + "a" * 53}]
    text = " ".join(checks.opengram_input_problems(values))
    assert "caddy_basic_auth_users is set by the playbook" in text and "$2b$" not in text, text


def test_aliases_of_the_domain_pass(values):
    values["opengram_domain_aliases"] = ["www.chat.example.com", "Chat.Example.org"]
    assert checks.opengram_input_problems(values) == []


def test_a_complete_sftp_repository_passes(values):
    values.update(opengram_backup_offsite_repository="sftp:backup@backup.example.com:/srv/restic/opengram",
                  opengram_backup_offsite_password="0123456789abcdefXYZ",
                  opengram_backup_offsite_sftp_key="-----BEGIN OPENSSH PRIVATE KEY-----\n...\n",
                  opengram_backup_offsite_sftp_known_hosts="backup.example.com ssh-ed25519 AAAAC3Nza")
    assert checks.opengram_input_problems(values) == []


@pytest.mark.parametrize("serial", [1, "2", "25%", "100%", [1, "50%", "100%"]])
def test_a_batch_size_passes(values, serial):
    values["opengram_serial"] = serial
    assert checks.opengram_input_problems(values) == []


def test_the_host_report_refuses_a_unit_of_another_service(values):
    report = "LISTEN 0 511 *:22 *:* ino:5 sk:1\nuid=\nunit=/usr/lib/systemd/system/ssh.service\n"
    values.update(opengram_service_name="ssh")
    problems = checks.opengram_input_problems(values, {"report": report})
    assert any("opengram_service_name='ssh' is already a unit on this host (/usr/lib/systemd/system/ssh.service)" in p
               for p in problems), problems
    assert len(problems) == 1, problems
    # The role's own unit: fine.
    ours = "uid=999\nunit=/etc/systemd/system/ssh.service\nunit_ours=yes\n"
    assert checks.opengram_input_problems(values, {"report": ours}) == []


def test_access_problems_name_the_weak_password_without_showing_it():
    secret = "alice-Wq7#mZ9pLx2"
    problems = access.opengram_access_problems(["password"], [{"name": "alice", "password": secret}], [])
    assert len(problems) == 1 and "is weak: it contains the user name" in problems[0]
    assert secret not in problems[0]
    assert access.opengram_access_problems(["password"], [{"name": "alice", "password": "x" * 8 + "Yz0-9aBcD#q"}],
                                           []) == []
    assert access.opengram_access_problems(["public"], [], [], proxy="caddy") == []


def test_the_trusted_proxies_use_the_access_cidr_check(values):
    values["opengram_trusted_proxies"] = ["0.0.0.0/0"]
    assert any("opengram_trusted_proxies=['0.0.0.0/0'] covers every IPv4 address" in p
               for p in checks.opengram_input_problems(values))


# ---- the login ban (roles/fail2ban, issue 28) ---------------------------------------------------


def test_the_fail2ban_defaults_pass(values):
    values.update(yaml.safe_load((ROOT / "roles/fail2ban/defaults/main.yml").read_text()))
    assert checks.opengram_input_problems(values) == []


@pytest.mark.parametrize("name, value, expected", [
    ("fail2ban_login_max_retries", 0, "fail2ban_login_max_retries=0 is out of range: use 1 to 1000 failed logins"),
    ("fail2ban_login_find_time", "10m", "fail2ban_login_find_time='10m' is not a whole number"),
    ("fail2ban_login_ban_time", -1, "fail2ban_login_ban_time=-1 is out of range: use 1 to 31536000 seconds"),
    ("fail2ban_login_allow_networks", ["192.0.2.7"], "fail2ban_login_allow_networks entry '192.0.2.7' is not a CIDR"),
    ("fail2ban_login_allow_networks", ["10.0.0.0/33"], "fail2ban_login_allow_networks entry '10.0.0.0/33' is not a CIDR"),
    ("fail2ban_login_allow_networks", ["0.0.0.0/1", "128.0.0.0/1"],
     "covers every IPv4 address (0.0.0.0/0): then no client is ever banned"),
    ("fail2ban_login_allow_networks", "192.0.2.0/24", "fail2ban_login_allow_networks='192.0.2.0/24' is not a list"),
])
def test_bad_login_ban_settings_are_refused(values, name, value, expected):
    values[name] = value
    problems = checks.opengram_input_problems(values)
    assert any(expected in p for p in problems), problems


def test_a_login_ban_without_the_password_mode_is_refused(values):
    values.update(opengram_access_modes=["networks"], opengram_access_networks=["192.0.2.0/24"],
                  opengram_login_ban=True)
    problems = checks.opengram_input_problems(values)
    assert any("opengram_login_ban is true but opengram_access_modes=['networks'] has no password mode" in p
               for p in problems), problems
    values["opengram_login_ban"] = "False"
    assert checks.opengram_input_problems(values) == []


def test_a_good_allow_list_passes(values):
    values["fail2ban_login_allow_networks"] = ["192.0.2.0/24", "2001:db8::/48"]
    assert checks.opengram_input_problems(values) == []


def test_the_roles_outputs_are_neither_checked_nor_unknown(values):
    """The preflight runs each role's validate first: their <role>_problems facts
    (and any other output a run defines) are in the variables it reads."""
    values.update(opengram_selfcheck_problems=[], opengram_backup_problems=["x"], opengram_problems=[],
                  opengram_layout={"home": "/var/lib/opengram"})
    assert checks.opengram_input_problems(values) == []


def test_every_preflight_role_publishes_an_output_the_checks_know():
    import yaml
    roles = yaml.safe_load((checks.ROLES_DIR / "opengram_preflight" / "vars" / "main.yml").read_text())
    for role in roles["__opengram_preflight_roles"]:
        assert role + "_problems" in checks.OUTPUTS, role
        assert (checks.ROLES_DIR / role / "tasks" / "validate.yml").is_file(), role
