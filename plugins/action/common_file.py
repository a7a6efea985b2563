# -*- coding: utf-8 -*-
"""The controller half of common_file: no round trip for a file already as wanted.

A role looks at its files once per run (the common_look module: per file
{sha256, owner, group, mode}; see ``known_entry``) and hands that answer's
``files`` to each common_file task as ``known``. When the entry this task
would leave on the host is the one the look saw, the file is already right: the
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


def known_entry(dest, content, owner, group, mode):
    """The look's answer (common_look's ``files`` entry) for a file with this content, owner,
    group and mode: {sha256, owner, group, mode} (None: cannot tell)."""
    if None in (dest, content, owner, group, mode) or not _MODE.match(str(mode)):
        return None
    digest = hashlib.sha256(to_bytes(content, errors="surrogate_or_strict")).hexdigest()
    return {"sha256": digest, "owner": str(owner), "group": str(group), "mode": str(mode)}


def is_known(known, dest, content, owner, group, mode):
    """Whether the look (common_look's ``files``: {path: {sha256, owner, group, mode, ...}}) saw
    the file exactly as this task would leave it."""
    wanted = known_entry(dest, content, owner, group, mode)
    seen = (known or {}).get(dest) if isinstance(known, dict) else None
    return wanted is not None and isinstance(seen, dict) and all(seen.get(key) == value
                                                                 for key, value in wanted.items())


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        known = args.pop("known", None) or {}
        if args.get("remote_src") is None and is_known(known, args.get("dest"), args.get("content"),
                                                       args.get("owner"), args.get("group"), args.get("mode")):
            result.update(changed=False, differs=False, dest=args["dest"], diff=[])
            return result
        result.update(redact(self._execute_module(module_args=args, task_vars=task_vars)))
        return result
