"""Filters of the opengram role."""

import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location(
    "opengram_filters", Path(__file__).resolve().parents[2] / "plugins/filter/opengram.py")
filters = importlib.util.module_from_spec(spec)
spec.loader.exec_module(filters)


@pytest.mark.parametrize("value, quoted", [
    ("og_abc", '"og_abc"'),
    ('a"b', '"a\\"b"'),
    ("a\\b", '"a\\\\b"'),
    ("$HOME x", '"$HOME x"'),
    (42, '"42"'),
])
def test_env_quote(value, quoted):
    assert filters.opengram_env_quote(value) == quoted


def test_env_quote_refuses_line_breaks_without_echoing_the_value():
    with pytest.raises(ValueError) as error:
        filters.opengram_env_quote("secret\nvalue")
    assert "secret" not in str(error.value)


def test_missing_modules_names_what_the_controller_cannot_import():
    assert filters.opengram_missing_modules(["json", "no_such_module_for_opengram"]) == ["no_such_module_for_opengram"]
    assert filters.opengram_missing_modules([]) == []


SUMMARY_LAYOUT = {"public_base_url": "https://chat.example.net", "proxy": "caddy", "version": "0.2.1",
                  "port": 3000, "secret_file": "/etc/opengram/instance-secret",
                  "backup_dir": "/var/backups/opengram"}


def _summary(**changes):
    site = {"layout": dict(SUMMARY_LAYOUT), "tls_mode": "acme", "checked": True, "access_modes": ["password"],
            "users": ["admin"], "networks": [], "alerts": {"command": False, "url": False},
            "backup": {"timer": True, "schedule": "daily", "randomized_delay": "1h", "keep": 5, "offsite": False},
            "vault_file": "/home/me/opengram-deploy/inventories/mysite/group_vars/opengram/vault.yml"}
    site.update(changes)
    return "\n".join(filters.opengram_site_summary(site))


def test_the_summary_says_where_who_the_secret_backups_and_alerts():
    text = _summary()
    assert "Opengram 0.2.1 is at https://chat.example.net/ (behind caddy" in text
    assert "the self-check through that URL passed" in text
    assert "the login admin, with the password kept in the vault /home/me/opengram-deploy/inventories/mysite/" \
           "group_vars/opengram/vault.yml (ansible-vault view" in text
    assert "sudo cat /etc/opengram/instance-secret" in text
    assert "Backups: daily (each at a random moment up to 1h later) into /var/backups/opengram" in text
    assert "keeping the last 5" in text and "none offsite" in text
    assert "Alerts: none (set opengram_alert_url or opengram_alert_command" in text


def test_the_summary_follows_the_settings():
    text = _summary(access_modes=["networks", "password"], networks=["192.0.2.0/24"], vault_file="", checked=False,
                    alerts={"command": True, "url": True}, backup={"timer": False})
    assert "Who gets in: clients from 192.0.2.0/24 and the login admin, with the password as " \
           "opengram_access_users gives them in the inventory." in text
    assert "not checked through that URL by this run" in text
    assert "Backups: none scheduled (opengram_backup_timer: false)" in text
    assert "goes to the command opengram_alert_command and the URL opengram_alert_url" in text
    assert "Who gets in: ANYONE" in _summary(access_modes=["public"])
    assert "Backups: not looked at by this run" in _summary(backup={})
    internal = _summary(tls_mode="internal")
    assert "Caddy's local CA" in internal


def test_the_summary_without_a_proxy_names_the_local_port():
    layout = dict(SUMMARY_LAYOUT, proxy="none")
    text = _summary(layout=layout)
    assert "answers on http://127.0.0.1:3000/ on the host only" in text
    assert "Who gets in" not in text
