"""Fixtures shared by the unit tests."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def values():
    """The opengram role's defaults as a host would have them, plus a domain (the input of
    the preflight's checks, filter_plugins/opengram_input.py)."""
    found = yaml.safe_load((ROOT / "roles/opengram/defaults/main.yml").read_text())
    found.update(opengram_domain="chat.example.com", opengram_public_base_url="https://chat.example.com",
                 opengram_backup_fetch_dir="backups/chat.example.com",
                 # Templated as Ansible would (password is in the default modes).
                 opengram_login_ban=True)
    return found
