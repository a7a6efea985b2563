# -*- coding: utf-8 -*-
"""The nginx role's reading of its look at sites-enabled (common_look's answer)."""

from __future__ import annotations

STOCK_DEFAULT = "/etc/nginx/sites-available/default"


def nginx_other_sites(look, our_site, default_link):
    """The names of the enabled sites other than ours. Debian's default site counts
    only when it is not the package's stock file: its md5 against dpkg's record of
    the conffile (nginx-common), since nginx serving nothing but that welcome page
    is not serving anyone's site."""
    look = look or {}
    stock = (look.get("conffiles", {}).get("nginx-common") or {}).get(STOCK_DEFAULT, "")
    default_is_stock = bool(stock) and look.get("md5", {}).get(default_link) == stock
    names = []
    for entry in look.get("listdirs", {}).get(default_link.rsplit("/", 1)[0], []):
        name = entry["name"]
        if name == our_site or (name == default_link.rsplit("/", 1)[1] and default_is_stock):
            continue
        names.append(name)
    return names


class FilterModule:
    def filters(self):
        return {"nginx_other_sites": nginx_other_sites}
