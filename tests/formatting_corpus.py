"""Bodies built to make a formatter slow: every markup character unclosed, nested, or repeated
until ``MESSENGER_MESSAGE_MAX_LENGTH``. Used by tests/test_formatting.py (a generous bound) and
bench/formatting.py (the measured worst case)."""

from __future__ import annotations

# name → the pattern repeated to the full length
PATTERNS: dict[str, str] = {
    "bold unclosed": "**a ",
    "bold nested": "**a **b ",
    "bold markers only": "**",
    "bold triple stars": "***a",
    "bold pairs": "**a** ",
    "bold across lines": "**a\n",
    "italic unclosed": "_a ",
    "italic nested": "_a _b ",
    "underscores only": "_",
    "italic pairs": "_a_ ",
    "underscores inside words": "a_b ",
    "bold and italic crossed": "**_a ",
    "backticks only": "`",
    "code unclosed": "`a ",
    "code spans": "`a` ",
    "code near its limit": "`" + "a" * 498 + "\n",
    "brackets only": "[",
    "link label unclosed": "[a ",
    "bracket and parenthesis": "](",
    "link without URL": "[a](",
    "link URL unclosed": "[a](https://e.com/",
    "link URL unclosed, spaced": "[a](https://e.com/b ",
    "links": "[a](https://e.com/b) ",
    "link label near its limit": "[" + "a" * 199 + "](https://e.com/",
    "URLs": "https://e.com/a ",
    "URLs without spaces": "https://e.com/a",
    "URLs with trailing punctuation": "https://e.com/a.) ",
    "URL scheme only": "https://",
    "URLs ending in character references": "https://e.com/a&gt; ",
    "URL ampersands": "https://e.com/&",
    "HTML characters": "&<>\"'",
    "line breaks": "\n",
    "everything unclosed": "**_`[a](https://e.com/ ",
    "stars and underscores": "*_",
    "placeholder characters": "\x01\x02\x03\x04\x05\x06\x07",
}


def adversarial_corpus(length: int) -> dict[str, str]:
    """Each pattern repeated to ``length`` characters, plus single long URLs of that length."""
    corpus = {name: (pattern * (length // len(pattern) + 1))[:length] for name, pattern in PATTERNS.items()}
    corpus["one long URL"] = ("https://e.com/" + "a" * length)[:length]
    corpus["one long URL ending in dots"] = ("https://e.com/a" + "." * length)[:length]
    corpus["one long URL of character references"] = ("https://e.com/" + "&amp;" * length)[:length]
    corpus["one long URL of almost references"] = ("https://e.com/" + "&" + "a" * 31 * length)[:length]
    corpus["one long URL of ampersands"] = ("https://e.com/" + "&" * length)[:length]
    corpus["one bold span"] = ("**" + "a" * length)[: length - 2] + "**"
    corpus["one italic span"] = ("_" + "a" * length)[: length - 1] + "_"
    return corpus
