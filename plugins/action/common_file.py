# -*- coding: utf-8 -*-
"""The controller half of common_file: no round trip for a file already as wanted.

A role looks at its files once per run (one command printing, per file,
``file=<dest> <sha256> <owner> <group> <mode>``; see ``known_line``) and
hands those lines to each common_file task as ``known``. When the line this
task would leave on the host is among them, the file is already right: the
task reports ok (changed and differs false, as the module would) without
running the module on the host. Otherwise, and always without ``known``,
with ``remote_src``, or with owner, group or mode missing or not plain, the
module runs as before. A look taken earlier in the run can only be older
than the file: a file written since by another task is not one of the
role's looked-at files (each is written by one task).

What it hands back never shows a bcrypt hash: the login gate's hashes are in
Caddy's site file (base64-encoded, as Caddy takes them) and a hash lets
whoever reads it test guessed passwords. The diff (``--diff``, ``--check
--diff``) and the module's arguments (``-vvv``) show ``HIDDEN`` in their
place and everything else as it is (``redact``).
"""

from __future__ import annotations

import hashlib
import re

from ansible.module_utils.common.text.converters import to_bytes
from ansible.plugins.action import ActionBase

_MODE = re.compile(r"^0[0-7]{3}$")
# A bcrypt hash ($2a$, $2b$, $2x$ or $2y$, cost, 53 characters), and the same
# base64-encoded (80 characters starting with JDJ, the encoding of "$2").
_BCRYPT = re.compile(r"\$2[abxy]\$[0-9]{2}\$[./A-Za-z0-9]{53}")
_BCRYPT_B64 = re.compile(r"(?<![A-Za-z0-9+/])JDJ[A-Za-z0-9+/]{77}(?![A-Za-z0-9+/])")
HIDDEN = "<bcrypt hash, not shown>"


def redact(value):
    """`value` (a module's result: dicts, lists, strings) with every bcrypt hash replaced by HIDDEN."""
    if isinstance(value, str):
        if "$2" not in value and "JDJ" not in value:
            return value
        hidden = _BCRYPT_B64.sub(HIDDEN, _BCRYPT.sub(HIDDEN, value))
        return value if hidden == value else hidden
    if isinstance(value, dict):
        return {key: redact(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    return value


def known_line(dest, content, owner, group, mode):
    """The look's line for a file with this content, owner, group and mode (None: cannot tell)."""
    if None in (dest, content, owner, group, mode) or not _MODE.match(str(mode)):
        return None
    digest = hashlib.sha256(to_bytes(content, errors="surrogate_or_strict")).hexdigest()
    return "file=%s %s %s %s %s" % (dest, digest, owner, group, mode)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        known = args.pop("known", None) or []
        line = None if args.get("remote_src") is not None else known_line(
            args.get("dest"), args.get("content"), args.get("owner"), args.get("group"), args.get("mode"))
        if line is not None and line in known:
            result.update(changed=False, differs=False, dest=args["dest"], diff=[])
            return result
        result.update(redact(self._execute_module(module_args=args, task_vars=task_vars)))
        return result
