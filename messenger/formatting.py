"""Markdown-like formatting rendered to safe HTML, in time linear in the body.

``**bold**``, ``_italic_``, ``` `code` ```, ``[text](https://…)``, bare http(s) links (trailing
punctuation left out, and, as in GitHub's autolinks, a trailing ``&name;`` or ``&#123;`` that looks
like an HTML character reference: ``https://example.com/&gt;`` links ``https://example.com/``,
never ``…/&gt`` with a stray ``;`` after it) and line breaks. The output contains no attribute a visitor controls except
an escaped ``href`` that starts with http:// or https://.

How it stays linear (a 150 000-character body renders in a few milliseconds: docs/benchmarks.md,
"Formatting"):

* Every pass is one C-level regular expression or string operation; no Python code runs per match.
  Code spans, links and bare URLs are cut out (``re.split``) and replaced by a one-character
  placeholder, so the later passes cannot reach inside them; bold and italic become placeholders
  too. The text is escaped once at the end and the placeholders are filled in with slices.
* A lazy ``**(.+?)**`` tried from every unclosed ``**`` scans to the end each time: quadratic.
  Whether an opener has a closer does not depend on the opener, so every opener before the last
  closer finds one and every opener after it finds none; the pattern runs only up to the last
  closer, which one backwards scan finds.
* Every bounded or possessive repetition stops at the next character that starts another match.

``static/messenger/formatting.js`` mirrors these rules for the dashboard's composer preview;
tests/test_formatting_browser.py checks that both give the same HTML (tests/formatting_cases.json
and random bodies).
"""

from __future__ import annotations

import asyncio
import html
import re

# Python's \s, spelled out so that formatting.js can use the very same class.
_SPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_WORD = r"\w"  # formatting.js: [\p{L}\p{N}_], the same set
# Placeholders (and \x00, ``_escaped``'s separator): a body's own characters in this range are
# replaced first.
_CODE, _LINK, _URL, _STRONG, _END_STRONG, _EM, _END_EM = "\x01\x02\x03\x04\x05\x06\x07"
_PLACEHOLDER_CHARACTERS = "\x00\x01\x02\x03\x04\x05\x06\x07"
_PLACEHOLDERS = re.compile("[\x00-\x07]")
_URL_CHAR = rf"[^{_SPACE}<>\"'\x01-\x07]"
# A URL is read in units: a character other than "&", a whole character reference (bounded, so
# each lookahead stops within 34 characters), or an "&" that does not start one. It cannot end
# inside a reference: its last unit is a character (not punctuation) or such a lone "&".
_REFERENCE = "&#?[A-Za-z0-9]{1,32};"
_LONE_AMPERSAND = "&(?!#?[A-Za-z0-9]{1,32};)"
# The units, unrolled: runs without "&" are one character class, as fast as before, and so is a
# run of lone "&".
_URL_BODY = rf"[^{_SPACE}<>\"'&\x01-\x07]*(?:(?:{_REFERENCE}|&+(?!#?[A-Za-z0-9]{{1,32}};))[^{_SPACE}<>\"'&\x01-\x07]*)*"
_URL_END = rf"(?:[^{_SPACE}<>\"'&\x01-\x07.,;:!?)]|{_LONE_AMPERSAND})"
_SCHEME_AFTER_H = "[Tt][Tt][Pp][Ss]?://"
_SCHEME = "[Hh]" + _SCHEME_AFTER_H

_CODE_SPAN = re.compile(r"`([^`\n]{1,500})`")
_MARKDOWN_LINK = re.compile(rf"\[([^\[\]\n]{{1,200}})\]\(({_SCHEME}[^{_SPACE}()<>\"'\x01-\x07]++)\)")
# The lookbehinds follow the first character: a pattern that starts with a character lets the
# regex engine skip ahead to its next occurrence instead of trying every position.
_BARE_URL = re.compile(rf"([Hh](?<![{_WORD}=][Hh]){_SCHEME_AFTER_H}(?={_URL_CHAR})(?:{_URL_BODY}{_URL_END})?)")
_BOLD = re.compile(rf"\*\*(?=[^{_SPACE}])(.+?)(?<=[^{_SPACE}])\*\*", re.DOTALL)
_LAST_BOLD = re.compile(rf".*(?<=[^{_SPACE}])\*\*", re.DOTALL)
_ITALIC = re.compile(rf"_(?<![{_WORD}/]_)(?=[^{_SPACE}])(.+?)(?<=[^{_SPACE}])_(?![{_WORD}])", re.DOTALL)
_LAST_ITALIC = re.compile(rf".*(?<=[^{_SPACE}])_(?![{_WORD}])", re.DOTALL)

_ANCHOR_OPEN = '<a href="'
_ANCHOR_REST = '" target="_blank" rel="noopener noreferrer nofollow">'

# Up to this length the worst body renders in a fraction of a millisecond, less than a hop to a
# thread costs; a longer one renders off the event loop (``arender``).
ON_LOOP_MAX_LENGTH = 2000


def render(body: str) -> str:
    """Render ``body`` to HTML that is safe to insert with innerHTML."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    if _PLACEHOLDERS.search(text):
        for character in _PLACEHOLDER_CHARACTERS:
            text = text.replace(character, "\ufffd")
    text, (codes,) = _cut(text, _CODE_SPAN, _CODE, 1)
    text, (labels, link_urls) = _cut(text, _MARKDOWN_LINK, _LINK, 2)
    text, (bare_urls,) = _cut(text, _BARE_URL, _URL, 1)
    if "**" in text:
        text = _pairs(text, _BOLD, _LAST_BOLD, _STRONG, _END_STRONG)
    if "_" in text:
        text = _pairs(text, _ITALIC, _LAST_ITALIC, _EM, _END_EM)
    text = html.escape(text, quote=True).replace("\n", "<br>")
    for placeholder, tag in ((_STRONG, "<strong>"), (_END_STRONG, "</strong>"), (_EM, "<em>"), (_END_EM, "</em>")):
        text = text.replace(placeholder, tag)
    bare_urls = _escaped(bare_urls)
    text = _fill(text, _URL, _ANCHOR_OPEN, bare_urls, _ANCHOR_REST, bare_urls, "</a>")
    # Labels may hold code placeholders: the links go back first, the code spans after them.
    text = _fill(text, _LINK, _ANCHOR_OPEN, _escaped(link_urls), _ANCHOR_REST, _escaped(labels), "</a>")
    return _fill(text, _CODE, "<code>", _escaped(codes), "</code>")


async def arender(body: str) -> str:
    """``render`` for the event loop: a long body renders in a thread, so that the loop goes on
    serving its other sockets meanwhile."""
    if len(body) <= ON_LOOP_MAX_LENGTH:
        return render(body)
    return await asyncio.to_thread(render, body)


def _cut(text: str, pattern: re.Pattern[str], placeholder: str, groups: int) -> tuple[str, list[list[str]]]:
    """``text`` with each match of ``pattern`` replaced by ``placeholder``, and each group's
    values in order."""
    pieces = pattern.split(text)
    if len(pieces) == 1:
        return text, [[] for _ in range(groups)]
    return placeholder.join(pieces[:: groups + 1]), [pieces[index :: groups + 1] for index in range(1, groups + 1)]


def _pairs(text: str, pattern: re.Pattern[str], last_closer: re.Pattern[str], opening: str, closing: str) -> str:
    """``pattern``'s pairs marked with ``opening``/``closing``, scanned only up to the last
    closer (an opener after it has nothing to close it)."""
    found = last_closer.match(text)
    if found is None:
        return text
    end = found.end()
    # split, not sub with a template: Python 3.11 expands a template in Python code, per match.
    pieces = pattern.split(text[:end])
    return _interleave(pieces[::2], opening, pieces[1::2], closing) + text[end:]


def _escaped(values: list[str]) -> list[str]:
    # One escape of the joined values, not one call per value.
    return html.escape("\x00".join(values), quote=True).split("\x00") if values else []


def _fill(text: str, placeholder: str, *columns: str | list[str]) -> str:
    """Each ``placeholder`` in ``text`` replaced by the next row of ``columns``."""
    parts = text.split(placeholder)
    return text if len(parts) == 1 else _interleave(parts, *columns)


def _interleave(parts: list[str], *columns: str | list[str]) -> str:
    """``parts`` joined by the rows of ``columns``: a list holds one value per gap between two
    parts, a string is the same in every row. Slices, so no Python code runs per row."""
    count = len(parts) - 1
    width = len(columns) + 1
    joined = [""] * (count * width + 1)
    joined[::width] = parts
    for index, column in enumerate(columns, 1):
        joined[index::width] = column if isinstance(column, list) else [column] * count
    return "".join(joined)


def preview(body: str, limit: int = 140) -> str:
    """The body on one line (runs of whitespace made one space), cut at ``limit`` characters.
    A send computes it on the event loop: only the first ``limit`` words are split apart (the
    rest of the body, left whole, lies beyond the cut)."""
    flat = " ".join(body.split(maxsplit=limit))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
