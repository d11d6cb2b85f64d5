"""Markdown-like formatting rendered to safe HTML.

Everything is escaped first; only then are ``**bold**``, ``_italic_``, ``` `code` ```, http(s)
links and line breaks turned into tags. The output contains no attribute a visitor controls
except an escaped ``href`` that must start with http:// or https://.
"""

from __future__ import annotations

import html
import re

_URL = re.compile(r"(?<![\"'=])\bhttps?://[^\s<>\"']+", re.IGNORECASE)
_MD_LINK = re.compile(r"\[([^\]\n]{1,200})\]\((https?://[^\s()<>\"']+)\)", re.IGNORECASE)
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*", re.DOTALL)
_ITALIC = re.compile(r"(?<![\w/])_(?=\S)(.+?)(?<=\S)_(?!\w)", re.DOTALL)
_CODE = re.compile(r"`([^`\n]{1,500})`")
_TRAILING_PUNCTUATION = ".,;:!?)"


def _anchor(url: str, text: str) -> str:
    return f'<a href="{url}" target="_blank" rel="noopener noreferrer nofollow">{text}</a>'


def _link_bare(match: re.Match[str]) -> str:
    url = match.group(0)
    trailing = ""
    while url and url[-1] in _TRAILING_PUNCTUATION:
        trailing = url[-1] + trailing
        url = url[:-1]
    return _anchor(url, url) + trailing


def render(body: str) -> str:
    """Render ``body`` to HTML that is safe to insert with innerHTML."""
    text = html.escape(body.replace("\r\n", "\n").replace("\r", "\n"), quote=True)
    placeholders: list[str] = []

    def stash(fragment: str) -> str:
        placeholders.append(fragment)
        return f"\x00{len(placeholders) - 1}\x00"

    text = _CODE.sub(lambda m: stash(f"<code>{m.group(1)}</code>"), text)
    text = _MD_LINK.sub(lambda m: stash(_anchor(m.group(2), m.group(1))), text)
    text = _URL.sub(lambda m: stash(_link_bare(m)), text)
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    text = _ITALIC.sub(r"<em>\1</em>", text)
    text = text.replace("\n", "<br>")
    return re.sub(r"\x00(\d+)\x00", lambda m: placeholders[int(m.group(1))], text)


def preview(body: str, limit: int = 140) -> str:
    flat = " ".join(body.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
