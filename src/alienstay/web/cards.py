"""The results grid's cards and chips, built in Python rather than by Jinja loops.

A results page has 120 cards and over a thousand chips; Jinja's per-attribute lookups and
per-chip escaping were most of the page's time at a million photos (`python -m benchmarks
gallery`). Every value is escaped here; a chip's HTML depends only on its word, its rounded
probability and whether it was searched for, so it is built once and reused.
"""

from __future__ import annotations

import functools
from urllib.parse import quote

from markupsafe import Markup, escape


def photo_url(image_id: str) -> str:
    return "/media/photo/" + quote(image_id, safe="/")


def page_url(image_id: str) -> str:
    return "/photo/" + quote(image_id, safe="/")


@functools.lru_cache(maxsize=4096)
def escaped(text: str) -> str:
    return str(escape(text))


@functools.lru_cache(maxsize=1 << 16)
def chip(facet: str, tag: str, percent: str, hit: bool) -> str:
    f = escaped(facet)
    return f'<li class="chip facet-{f}{" hit" if hit else ""}" title="{f}: {percent} %">{escaped(tag)}</li>'


def tag_chips(tags: list[dict], words: list[str] | tuple = ()) -> Markup:
    """A photo's selected tags as chips, searched-for words (bare or facet:tag) highlighted."""
    asked = set(words)
    items = [chip(t["facet"], t["tag"], f"{t['prob'] * 100:.0f}", t["tag"] in asked or f"{t['facet']}:{t['tag']}" in asked)
             for t in tags]
    return Markup('<ul class="chips small">' + "".join(items) + "</ul>")


def card(image_id: str, tags: list[dict], words: list[str] | tuple = (), score: float | None = None) -> str:
    """One result: the photo, its id (linked to its page), its score when ranked, its chips."""
    i, page = escaped(image_id), escape(page_url(image_id))
    shown = ("" if score is None else
             f'<span class="score" title="sum of the matched words\' probabilities">{score:.2f}</span>')
    return (f'<li class="card" data-image-id="{i}"><a href="{page}"><img src="{escape(photo_url(image_id))}" alt="{i}" '
            f'loading="lazy"></a><div class="meta"><a href="{page}" class="id">{i}</a>{shown}</div>'
            f"{tag_chips(tags, words)}</li>")


def cards(results: list[dict], words: list[str] | tuple = ()) -> Markup:
    """Ranked results (image_id, tags, score) as cards."""
    return Markup("".join(card(r["image_id"], r["tags"], words, r["score"]) for r in results))


def browse_cards(image_ids: list[str], tags: dict[str, list[dict]]) -> Markup:
    """The home page without words: photos in catalog order, no score."""
    return Markup("".join(card(i, tags.get(i, [])) for i in image_ids))
