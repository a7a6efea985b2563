"""The nginx role's reading of its look at sites-enabled (plugins/filter/nginx_sites.py):
which enabled sites are someone else's, so that retiring or uninstalling ours never
stops an nginx that serves them."""

from pathlib import Path

import role_modules

ROOT = Path(__file__).resolve().parents[2]
SITES = role_modules.load(ROOT / "plugins/filter/nginx_sites.py")
ENABLED = "/etc/nginx/sites-enabled"
STOCK_MD5 = "4a0b3c7e0c4f1e5d9a8b7c6d5e4f3a2b"


def look(names, default_md5=None):
    answer = {"listdirs": {ENABLED: [{"name": name, "type": "link"} for name in names]},
              "conffiles": {"nginx-common": {SITES.STOCK_DEFAULT: STOCK_MD5}}, "md5": {}}
    if default_md5:
        answer["md5"][ENABLED + "/default"] = default_md5
    return answer


def test_ours_and_the_stock_default_are_nobody_elses():
    assert SITES.nginx_other_sites(look(["opengram", "default"], STOCK_MD5), ENABLED, "opengram") == []


def test_an_edited_default_and_other_sites_count():
    answer = look(["opengram", "default", "blog"], "0" * 32)
    assert SITES.nginx_other_sites(answer, ENABLED, "opengram") == ["default", "blog"]


def test_no_look_or_no_directory_means_no_other_site():
    assert SITES.nginx_other_sites({}, ENABLED, "opengram") == []
    assert SITES.nginx_other_sites(None, ENABLED, "opengram") == []
    assert SITES.nginx_other_sites(look(["blog"]), "/elsewhere", "opengram") == []
