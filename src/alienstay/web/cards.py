"""The results grid's cards and chips, built in Python rather than by Jinja loops.

A results page has 120 cards and over a thousand chips; Jinja's per-attribute lookups and
per-chip escaping were most of the page's time at a million photos (`python -m benchmarks
gallery`). Every value is escaped here; a chip's HTML depends only on its word, its rounded
probability and whether it was searched for, so it is built once and reused.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import quote

from markupsafe import Markup, escape

UNQUOTED = re.compile(r"[A-Za-z0-9_.~/-]*")  # what quote(..., safe="/") leaves as it is


def quoted(image_id: str) -> str:
    """quote(image_id, safe="/"), skipped for the usual id that has nothing to quote (a tenth of the time:
    two URLs a result, 240 a page)."""
    return image_id if UNQUOTED.fullmatch(image_id) else quote(image_id, safe="/")


def photo_url(image_id: str) -> str:
    return "/media/photo/" + quoted(image_id)


def page_url(image_id: str) -> str:
    return "/photo/" + quoted(image_id)


@functools.lru_cache(maxsize=4096)
def escaped(text: str) -> str:
    return str(escape(text))


@functools.lru_cache(maxsize=1 << 16)
def chip(facet: str, tag: str, percent: str, hit: bool) -> str:
    f = escaped(facet)
    return f'<li class="chip facet-{f}{" hit" if hit else ""}" title="{f}: {percent} %">{escaped(tag)}</li>'


def searched(facet: str, tag: str, asked: set[str]) -> bool:
    """Is this word one of the searched-for words (bare, or as facet:tag)?"""
    return tag in asked or f"{facet}:{tag}" in asked


def tag_chips(tags: list[dict], words: list[str] | tuple = ()) -> Markup:
    """A photo's selected tags (dicts of facet, tag, prob) as chips, searched-for words highlighted."""
    asked = set(words)
    items = [chip(t["facet"], t["tag"], f"{t['prob'] * 100:.0f}", searched(t["facet"], t["tag"], asked)) for t in tags]
    return Markup('<ul class="chips small">' + "".join(items) + "</ul>")


def coded_chips(codes: list[int], percents: list[int], pairs: list[tuple[str, str]], hits: frozenset[int]) -> str:
    """The same chips from word codes and whole percents (the word index's own form: no dicts)."""
    items = [chip(*pairs[c], str(p), c in hits) for c, p in zip(codes, percents)]
    return '<ul class="chips small">' + "".join(items) + "</ul>"


WORDS_SCORE = "sum of the matched words' probabilities"  # a word search's score, explained on hover


def result_cards(ids: list[str], scores: list[float], chips: list[tuple[list[int], list[int]]],
                 pairs: list[tuple[str, str]], words: list[str], score_title: str = WORDS_SCORE) -> Markup:
    """A page of ranked results (by words, or by meaning) as cards: photo, id, score, chips."""
    asked = set(words)
    hits = frozenset(c for c, (facet, tag) in enumerate(pairs) if searched(facet, tag, asked))
    title = escaped(score_title)
    # a card a line, as the template's loop wrote them (a page's source stays readable)
    return Markup("\n".join(card(i, coded_chips(*codes, pairs, hits), s, title) for i, s, codes in zip(ids, scores, chips)))


def card(image_id: str, chips_html: str, score: float | None = None, title: str = escaped(WORDS_SCORE)) -> str:
    """One result: the photo, its id (linked to its page), its score when ranked (`title`: escaped), its chips."""
    i, page = escaped(image_id), escape(page_url(image_id))
    shown = "" if score is None else f'<span class="score" title="{title}">{score:.2f}</span>'
    return (f'<li class="card" data-image-id="{i}"><a href="{page}"><img src="{escape(photo_url(image_id))}" alt="{i}" '
            f'loading="lazy"></a><div class="meta"><a href="{page}" class="id">{i}</a>{shown}</div>'
            f"{chips_html}</li>")


def browse_cards(image_ids: list[str], tags: dict[str, list[dict]]) -> Markup:
    """The home page without words: photos in catalog order, no score."""
    return Markup("".join(card(i, tag_chips(tags.get(i, []))) for i in image_ids))
