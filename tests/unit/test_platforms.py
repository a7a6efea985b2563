"""One list of supported platforms (roles/opengram/vars/platforms.yml): every
role's meta/main.yml and the platform table of docs/platforms.md say the same (issue 27)."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PLATFORMS = yaml.safe_load((ROOT / "roles/opengram/vars/platforms.yml").read_text())["__opengram_platforms"]
ROLES = ("common", "opengram", "caddy", "nginx", "certbot", "fail2ban")


def by_distribution():
    result = {}
    for entry in PLATFORMS:
        result.setdefault(entry["distribution"], set()).add(entry["codename"])
    return result


def test_every_entry_is_complete():
    for entry in PLATFORMS:
        assert entry["nodejs"] in ("distro", "nodesource"), entry
        assert set(entry["caddy"]) <= {"distribution", "upstream"} and entry["caddy"], entry
        assert ("proven" in entry) != ("like" in entry), "an entry is proven in CI or like a proven one: %s" % entry
        if "like" in entry:
            proven = ["%s %s" % (e["distribution"], e["version"]) for e in PLATFORMS if "proven" in e]
            assert entry["like"] in proven, entry


def test_every_role_lists_the_same_platforms():
    for role in ROLES:
        meta = yaml.safe_load((ROOT / "roles" / role / "meta/main.yml").read_text())["galaxy_info"]
        listed = {p["name"]: set(p["versions"]) for p in meta["platforms"]}
        assert listed == by_distribution(), role


def test_the_docs_table_is_the_list():
    page = (ROOT / "docs/platforms.md").read_text()
    section = page.split("## Supported releases", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if re.match(r"\| (Debian|Ubuntu) ", line)]
    assert len(rows) == len(PLATFORMS), rows
    for entry, row in zip(PLATFORMS, rows):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0] == "%s %s (%s)" % (entry["distribution"], entry["version"], entry["codename"]), row
        assert cells[1] == {"distro": "the distribution", "nodesource": "NodeSource"}[entry["nodejs"]], row
        assert cells[2] == ", ".join(entry["caddy"]), row
        assert cells[3].startswith("proven" if "proven" in entry else "expected"), row
