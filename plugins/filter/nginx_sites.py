# -*- coding: utf-8 -*-
"""The nginx role's reading of its look at sites-enabled (common_look's answer)."""

from __future__ import annotations

STOCK_DEFAULT = "/etc/nginx/sites-available/default"


def nginx_other_sites(look, sites_enabled, our_site, default_site="default"):
    """The names of the enabled sites in `sites_enabled` other than `our_site`, from a
    look with `listdirs` of that directory, `conffiles` of nginx-common and the `md5`
    of the default site's link. Debian's default site counts only when it is not the
    package's stock file (its md5 against dpkg's record of the conffile), since nginx
    serving nothing but that welcome page is not serving anyone's site."""
    look = look or {}
    stock = (look.get("conffiles", {}).get("nginx-common") or {}).get(STOCK_DEFAULT, "")
    default_link = "%s/%s" % (sites_enabled, default_site)
    default_is_stock = bool(stock) and look.get("md5", {}).get(default_link) == stock
    return [entry["name"] for entry in look.get("listdirs", {}).get(sites_enabled, [])
            if entry["name"] != our_site and not (entry["name"] == default_site and default_is_stock)]


class FilterModule:
    def filters(self):
        return {"nginx_other_sites": nginx_other_sites}
