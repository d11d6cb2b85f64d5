"""The staff pages' scripts keep their words in parallel English and Russian tables (``const
STRINGS = {en: {…}, ru: {…}}``): every English key has its Russian string, and the Russian table
has no key the English one lacks (a misspelt key would never be read). A word's plural forms
(``{one: …, other: …}``, chosen by Intl.PluralRules) are one entry: Russian may have other forms
than English. reports.js reads a missing Russian key in English (tests/test_reports_page_defects_browser.py).
"""

from __future__ import annotations

import re

import pytest

from tests.live import ROOT

SCRIPTS = ["reports.js", "dashboard.js", "visitors.js"]
PLURAL_FORMS = {"zero", "one", "two", "few", "many", "other"}
TOKEN = re.compile(
    r"""\s+|//[^\n]*|/\*.*?\*/"""  # blanks and comments: skipped
    r"""|(?P<token>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`(?:\\.|[^`\\])*`|=>|[A-Za-z_$][\w$]*|\d[\w.]*|\S)""",
    re.S,
)
CLOSING = {"{": "}", "(": ")", "[": "]"}

Table = dict[str, "Table | None"]


def tokens(source: str) -> list[str]:
    return [match["token"] for match in TOKEN.finditer(source) if match["token"]]


def parse_object(items: list[str], at: int) -> tuple[Table, int]:
    """The object literal opening at ``items[at]``: its keys, each an object (a nested table) or
    None (anything else: a string, a list, a function); and the index after its ``}``."""
    assert items[at] == "{", items[at : at + 5]
    table: Table = {}
    at += 1
    while items[at] != "}":
        key = items[at]
        if key[0] in "\"'":
            key = key[1:-1]
        assert items[at + 1] == ":", f"not a key: {items[at : at + 5]}"
        at += 2
        if items[at] == "{":
            table[key], at = parse_object(items, at)
        else:
            table[key] = None
            depth: list[str] = []
            while depth or items[at] not in (",", "}"):
                if items[at] in CLOSING:
                    depth.append(CLOSING[items[at]])
                elif depth and items[at] == depth[-1]:
                    depth.pop()
                at += 1
        if items[at] == ",":
            at += 1
    return table, at + 1


def strings_of(script: str) -> Table:
    items = tokens((ROOT / "static" / "messenger" / script).read_text())
    for at in range(len(items) - 3):
        if items[at : at + 4] == ["const", "STRINGS", "=", "{"]:
            return parse_object(items, at + 3)[0]
    raise AssertionError(f"{script}: no const STRINGS = {{…}}")


def paths(table: Table, prefix: str = "") -> set[str]:
    """Every entry's dotted path; a table of plural forms is one entry."""
    found = set()
    for key, value in table.items():
        if value is None or set(value) <= PLURAL_FORMS:
            found.add(prefix + key)
        else:
            found |= paths(value, f"{prefix}{key}.")
    return found


def test_the_parser_reads_nested_tables_plural_forms_and_functions():
    source = """const STRINGS = { en: { a: "x, }", b: { c: 'y' }, "d.e": (n) => n + (n === 1 ? " one" : " {more}"),
        f: ["a", "b"], g: { one: " day", other: " days" }, // h: "commented out"
        i: { j: { k: `t` } } }, ru: {} };"""
    items = tokens(source)
    table = parse_object(items, 3)[0]
    assert paths(table["en"]) == {"a", "b.c", "d.e", "f", "g", "i.j.k"}
    assert table["ru"] == {}


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_english_string_has_its_russian_one(script: str):
    tables = strings_of(script)
    assert set(tables) == {"en", "ru"}
    english, russian = paths(tables["en"]), paths(tables["ru"])
    assert len(english) > 20
    assert sorted(english - russian) == [], "no Russian string"
    assert sorted(russian - english) == [], "not an English key"
