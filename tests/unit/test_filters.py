"""Filters of the opengram role."""

import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location(
    "opengram_filters", Path(__file__).resolve().parents[2] / "plugins/filter/opengram.py")
filters = importlib.util.module_from_spec(spec)
spec.loader.exec_module(filters)


@pytest.mark.parametrize("value, quoted", [
    ("og_abc", '"og_abc"'),
    ('a"b', '"a\\"b"'),
    ("a\\b", '"a\\\\b"'),
    ("$HOME x", '"$HOME x"'),
    (42, '"42"'),
])
def test_env_quote(value, quoted):
    assert filters.opengram_env_quote(value) == quoted


def test_env_quote_refuses_line_breaks_without_echoing_the_value():
    with pytest.raises(ValueError) as error:
        filters.opengram_env_quote("secret\nvalue")
    assert "secret" not in str(error.value)


def test_missing_modules_names_what_the_controller_cannot_import():
    assert filters.opengram_missing_modules(["json", "no_such_module_for_opengram"]) == ["no_such_module_for_opengram"]
    assert filters.opengram_missing_modules([]) == []
