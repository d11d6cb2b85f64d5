"""Static files in production: hashed names cached for a year, compressed copies, and a stable
embed URL.

A site owner pastes ``/static/messenger/widget-loader.js`` once and never changes it. That name
is served with a short cache, and its collected copy points at the hashed ``widget.<hash>.js``,
which is cached for a year: a new release reaches visitors within the loader's cache time, and
the 50 KB widget is downloaded again only when it really changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.contrib.staticfiles.storage import ManifestStaticFilesStorage
from django.core.files.base import ContentFile
from whitenoise.middleware import WhiteNoiseMiddleware
from whitenoise.storage import CompressedManifestStaticFilesStorage

# The loader builds the widget's address as ``new URL("widget.js", s.src)``; collectstatic rewrites
# the quoted name to the hashed one, as it does for ``url(…)`` in CSS.
LOADER_WIDGET_URL = (
    r"""(?P<matched>new URL\("(?P<url>[\w.-]+\.js)", s\.src\))""",
    """new URL("%(url)s", s.src)""",
)

# Names embedded on other sites: their unhashed copies carry the hashed references too.
STABLE_ENTRY_POINTS = ("messenger/widget-loader.js",)


class StableEntryPointsMixin(ManifestStaticFilesStorage):
    """After hashing, the unhashed copy of each stable entry point gets the hashed copy's content
    (by default it keeps the source's, whose references are unhashed)."""

    patterns = (*ManifestStaticFilesStorage.patterns, ("*.js", (LOADER_WIDGET_URL,)))

    def post_process(
        self, paths: dict[str, Any], dry_run: bool = False, **options: Any
    ) -> Iterator[tuple[str, str | None, Any]]:
        yield from super().post_process(paths, dry_run, **options)
        if dry_run:
            return
        for name in STABLE_ENTRY_POINTS:
            if name not in paths:
                continue
            with self.open(self.stored_name(name)) as hashed:
                content = hashed.read()
            self.delete(name)
            self.save(name, ContentFile(content))


class ProductionStaticFilesStorage(CompressedManifestStaticFilesStorage, StableEntryPointsMixin):
    """WhiteNoise's hashed + gzip/brotli storage; compression runs after the entry points are
    rewritten, so their compressed copies match."""


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    # Hashed names are cached for one year, the conventional ceiling for far-future caching,
    # instead of WhiteNoise's ten.
    FOREVER = 365 * 24 * 60 * 60
