"""The docs stay references, and what cites them names a section that exists.

docs/benchmarks.md keeps the current figures, not a diary (its history is in git), and
docs/architecture.md stays one page. Code and docs cite a document by section —
``docs/benchmarks.md, "Send path alone"`` — never by an item number, which changes meaning as the
document is edited.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SOURCES = ("messenger", "bench", "static", "tests", "docs", "project", "README.md")
SUFFIXES = {".py", ".js", ".md", ".html", ".css"}

# A citation with an item number, either way round: "benchmarks.md, item 21", "item 20 of
# docs/benchmarks.md".
ITEM_CITATION = re.compile(
    r"[\w./-]*\.md[\"')\]]*[,:]?\s+items?\s+\d+|\bitems?\s+\d+(?:\s*[–,-]\s*\d+)*\s+(?:of|in)\s+(?:the\s+)?[\w./-]*\.md"
)
# A citation by section: docs/protocol.md, "Close codes".
SECTION_CITATION = re.compile(r"([\w.-]+\.md)\)?,\s*\"([^\"]+)\"")
# Citations that code due to be rewritten still holds: (file, the exact text).
KNOWN_ITEM_CITATIONS: set[tuple[str, str]] = set()


def source_texts() -> dict[str, str]:
    """Every source and document, its lines joined as one text (comment markers dropped), so that
    a citation broken over two lines is read whole."""
    texts = {}
    for name in SOURCES:
        path = ROOT / name
        files = [path] if path.is_file() else [f for f in path.rglob("*") if f.suffix in SUFFIXES]
        for file in files:
            if "node_modules" in file.parts or file == Path(__file__):
                continue
            text = file.read_text(encoding="utf-8", errors="replace")
            texts[str(file.relative_to(ROOT))] = re.sub(r"\s*\n\s*(?:#|//|\*)?\s*", " ", text)
    return texts


def test_benchmarks_is_a_reference_and_architecture_one_page():
    assert len((DOCS / "benchmarks.md").read_text().splitlines()) <= 300
    assert len((DOCS / "architecture.md").read_text().splitlines()) <= 200


def test_nothing_cites_a_document_by_item_number():
    found = [
        (name, match.group(0))
        for name, text in source_texts().items()
        for match in ITEM_CITATION.finditer(text)
        if (name, match.group(0)) not in KNOWN_ITEM_CITATIONS
    ]
    assert found == [], "cite the section by its title instead"


def test_every_cited_section_exists():
    headings = {
        path.name: [line.lstrip("#").strip() for line in path.read_text().splitlines() if line.startswith("#")]
        for path in DOCS.glob("*.md")
    }
    missing = [
        (name, document, section)
        for name, text in source_texts().items()
        for document, section in SECTION_CITATION.findall(text)
        if document in headings and not any(heading.startswith(section) for heading in headings[document])
    ]
    assert missing == []
