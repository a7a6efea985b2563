"""Filters of the opengram role."""

from __future__ import annotations


def opengram_env_quote(value):
    """Quote a value for a systemd EnvironmentFile (double quotes, C escapes)."""
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ValueError("opengram.env values cannot contain line breaks")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class FilterModule:
    def filters(self):
        return {"opengram_env_quote": opengram_env_quote}
