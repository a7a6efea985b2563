# -*- coding: utf-8 -*-
"""The "reload owed" stamp: what common_reload_stamp records and checks, and
what common_look answers as `reloads` (one computation for both)."""

from __future__ import annotations

import hashlib
import os


def checksum(files):
    """sha256sum's line for the concatenation of the files that exist ('' when none does)."""
    if not any(os.path.exists(path) for path in files):
        return ""
    digest = hashlib.sha256()
    for path in files:
        try:
            with open(path, "rb") as handle:
                digest.update(handle.read())
        except OSError:
            continue  # like `cat` with its errors silenced: a missing file adds nothing
    return digest.hexdigest() + "  -"


def read_stamp(stamp):
    """The stamp as the shell's $(cat stamp) saw it: trailing newlines dropped, '' when absent."""
    try:
        with open(stamp, encoding="utf-8") as handle:
            return handle.read().rstrip("\n")
    except OSError:
        return ""
