"""The caddy role's edits of the operator's Caddyfile (plugins/filter/caddy_deploy.py):
the role adds its two marked blocks and takes out exactly those."""

import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("caddy_deploy", ROOT / "plugins/filter/caddy_deploy.py")
caddy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(caddy)

GLOBAL = "/etc/caddy/opengram-deploy/global.caddy"
SITE = "/etc/caddy/opengram-deploy/site.caddy"
STOCK = yaml.safe_load((ROOT / "roles/caddy/vars/main.yml").read_text())["__caddy_stock_config"]

OPERATOR_WITH_GLOBALS = """# my Caddy
{
\temail ops@example.com
}

:8081 {
\trespond "other site"
}
"""
OPERATOR_WITHOUT_GLOBALS = """# my Caddy

other.example.com {
\treverse_proxy 127.0.0.1:9000
}
"""


@pytest.mark.parametrize("operator", [STOCK, OPERATOR_WITH_GLOBALS, OPERATOR_WITHOUT_GLOBALS, ""])
def test_strip_gives_back_exactly_the_operators_file(operator):
    joined = caddy.caddy_deploy_join(operator, GLOBAL, SITE)
    assert caddy.caddy_deploy_is_marked(joined)
    assert caddy.caddy_deploy_strip(joined) == operator
    # Joining what is already joined changes nothing (the role's second run).
    assert caddy.caddy_deploy_join(caddy.caddy_deploy_strip(joined), GLOBAL, SITE) == joined


def test_the_site_import_ends_the_file():
    joined = caddy.caddy_deploy_join(OPERATOR_WITHOUT_GLOBALS, GLOBAL, SITE)
    assert joined.endswith("# BEGIN opengram-deploy: site\nimport %s\n# END opengram-deploy: site\n" % SITE)


def test_global_options_go_inside_the_operators_global_block():
    joined = caddy.caddy_deploy_join(OPERATOR_WITH_GLOBALS, GLOBAL, SITE)
    lines = joined.splitlines()
    # One global options block: the operator's, our import as its first lines.
    assert [l for l in lines if l == "{"] == ["{"]
    assert lines[1:5] == ["{", "\t# BEGIN opengram-deploy: global options", "\timport " + GLOBAL,
                          "\t# END opengram-deploy: global options"]
    assert "\temail ops@example.com" in lines


def test_without_a_global_block_ours_comes_first():
    joined = caddy.caddy_deploy_join(STOCK, GLOBAL, SITE)
    assert joined.startswith("# BEGIN opengram-deploy: global options\n{\n\timport %s\n}\n" % GLOBAL)
    assert STOCK in joined


def test_a_block_without_its_end_is_refused():
    with pytest.raises(ValueError, match="without its"):
        caddy.caddy_deploy_strip("# BEGIN opengram-deploy: site\nimport x\n")


@pytest.mark.parametrize("text, sites", [("", False), ("# only\n\n  # comments\n", False),
                                         (OPERATOR_WITHOUT_GLOBALS, True), (STOCK, True)])
def test_has_sites(text, sites):
    assert caddy.caddy_deploy_has_sites(text) is sites
