# -*- coding: utf-8 -*-
"""The one way roles/common's modules replace a file: write a temporary file
beside it, let the caller prepare it (owner, group, mode, validation), then
rename it over the destination. A reader sees the old file or the new one,
never half of one; the temporary file is gone whatever happens."""

import os
import tempfile


def replace_file(dest, data, prefix, prepare=None):
    """Atomically put the bytes `data` at `dest`. `prepare(tmp_path)` runs on the
    written temporary file before it takes the name (raise or fail to stop)."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=os.path.dirname(dest) or ".")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if prepare is not None:
            prepare(tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
