"""The caddy role's edits of the operator's /etc/caddy/Caddyfile.

The Caddyfile stays the operator's file: the role adds two marked blocks to it
and nothing else, and takes exactly those blocks out again (retire, uninstall).

- "global options": an `import` of the role's global options file, placed
  inside the Caddyfile's global options block (as its first lines), or, when
  the file has no global options block, a block of its own at the very top
  (Caddy takes global options only from the first block of the file).
- "site": an `import` of the role's site file, at the end of the file.

Pure string functions, so that they are unit-tested (tests/unit/test_caddy_filters.py).
"""

import re

MARK = "opengram-deploy"
_BEGIN = re.compile(r"^[ \t]*# BEGIN %s: (?P<name>[^\n]*?)[ \t]*$" % re.escape(MARK))
# Leading blank and comment lines, then a line with only "{": the file's global
# options block (a Caddyfile's opening brace always ends its line).
_GLOBAL_BLOCK = re.compile(r"\A((?:[ \t]*(?:#[^\n]*)?\n)*[ \t]*\{[ \t]*\n)")


def caddy_deploy_strip(content):
    """The Caddyfile without the role's marked blocks (the operator's part)."""
    lines = (content or "").splitlines(keepends=True)
    out, skipping = [], None
    for line in lines:
        if skipping is not None:
            if line.strip() == "# END %s: %s" % (MARK, skipping):
                skipping = None
            continue
        found = _BEGIN.match(line.rstrip("\n"))
        if found:
            skipping = found.group("name")
            continue
        out.append(line)
    if skipping is not None:
        raise ValueError("the Caddyfile has '# BEGIN %s: %s' without its '# END %s: %s' line: "
                         "restore or remove that block by hand" % (MARK, skipping, MARK, skipping))
    return "".join(out)


def caddy_deploy_is_marked(content):
    """Does the Caddyfile carry any of the role's marked blocks?"""
    return any(_BEGIN.match(line) for line in (content or "").splitlines())


def caddy_deploy_join(operator, global_import, site_import):
    """The operator's part with the role's blocks: the global options import
    inside (or as) the global options block, the site import at the end."""
    operator = operator or ""
    if operator and not operator.endswith("\n"):
        operator += "\n"
    site_block = "# BEGIN {m}: site\nimport {path}\n# END {m}: site\n".format(m=MARK, path=site_import)
    found = _GLOBAL_BLOCK.match(operator)
    if found:
        inside = "\t# BEGIN {m}: global options\n\timport {path}\n\t# END {m}: global options\n".format(
            m=MARK, path=global_import)
        head = found.group(1)
        text = head + inside + operator[len(head):]
    else:
        block = "# BEGIN {m}: global options\n{{\n\timport {path}\n}}\n# END {m}: global options\n".format(
            m=MARK, path=global_import)
        text = block + operator
    return text + site_block


def caddy_deploy_has_sites(operator):
    """Is there anything but blank lines and comments in the operator's part?"""
    return any(line.strip() and not line.strip().startswith("#") for line in (operator or "").splitlines())


class FilterModule:
    def filters(self):
        return {
            "caddy_deploy_strip": caddy_deploy_strip,
            "caddy_deploy_is_marked": caddy_deploy_is_marked,
            "caddy_deploy_join": caddy_deploy_join,
            "caddy_deploy_has_sites": caddy_deploy_has_sites,
        }
