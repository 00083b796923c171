"""The gallery's embedding side: search by meaning and "more like this" (routes and page pieces).

Kept apart from the word search (routes_*.py, gallery.py, `alienstay.wordindex`): this module only reads the
tag stage's embeddings through `alienstay.similarity`. A phrase that is not an alien word is
searched by meaning, ranked by cosine with the tag stage's own model, and may be combined with
word filters (only photos with every word among their selected tags are ranked). When that model
cannot be loaded here, the page and the API say so and word search works as before.
"""

from __future__ import annotations

import numpy as np
import orjson
import pyarrow as pa
from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response
from markupsafe import Markup

from alienstay.similarity.query import MAX_TEXT, QueryModelUnavailable
from alienstay.similarity.service import NoEmbeddings, Ranked, Similarity, is_usable
from alienstay.web.cards import page_url, photo_url, result_cards
from alienstay.web.site import Site, site
from alienstay.wordindex import lookup as wordindex
from alienstay.workspace.layout import DamagedTable
from alienstay.workspace.storage import without_paths

MEANING_SCORE = "cosine of the photo with the phrase"  # a card's score, explained on hover

SIMILAR_SHOWN = 12


class JSONResponse(Response):
    """JSON through orjson: a results page of 120 photos encodes in a tenth of the json module's time
    (the stdlib's took 2.7 ms of a search by meaning's ~15)."""

    media_type = "application/json"

    def render(self, content: object) -> bytes:
        return orjson.dumps(content)


def word_filter_ids(gallery, words: list[str]) -> pa.Array | None:
    """Every usable photo with all the words selected (None: no word filter), as an Arrow array of ids."""
    if not words:
        return None
    index = gallery.index
    if index is None:
        return pa.array([], pa.string())
    found = wordindex.search(index, words, gallery.usable, 0, max(index.size, 1))
    return index.ids.take(pa.array(np.asarray(found.ordinals, dtype=np.int64)))


def shown_rows(gallery, ranked: Ranked) -> tuple[list[str], list[float], list[int | None]]:
    """The ranked photos still in the catalog, their scores and word-index ordinals, looked up by
    embedding row where the ranking kept its rows (one array step), else by id."""
    if ranked.rows is None or gallery.embeddings is None:
        kept = [(i, s) for i, s in zip(ranked.ids, ranked.scores) if i in gallery.catalog]
        ids = [i for i, _ in kept]
        found = [-1] * len(ids) if gallery.index is None else gallery.index.ordinals(ids).tolist()
        return ids, [s for _, s in kept], [o if o >= 0 else None for o in found]
    rows = np.asarray(ranked.rows, np.int64)
    usable = gallery.embedding_rows  # the catalog's rows (None: every row is in it)
    keep = np.ones(len(rows), bool) if usable is None else is_usable(rows, usable)
    ids = [i for i, k in zip(ranked.ids, keep.tolist()) if k]
    scores = [s for s, k in zip(ranked.scores, keep.tolist()) if k]
    return ids, scores, gallery.ordinals_of_rows(rows[keep])


def results(gallery, ranked: Ranked) -> list[dict]:
    ids, scores, ordinals = shown_rows(gallery, ranked)
    chips = gallery.selected_tags_of(ids, ordinals)
    return [{"image_id": i, "score": round(s, 4), "tags": chips.get(i, []), "image": photo_url(i), "page": page_url(i)}
            for i, s in zip(ids, scores)]


def meaning_cards(gallery, ranked: Ranked, words: list[str]) -> tuple[Markup, int]:
    """The results grid of a ranking by meaning as HTML cards (as a word search's), and how many."""
    ids, scores, ordinals = shown_rows(gallery, ranked)
    tagged = [o for o in ordinals if o is not None]
    codes = iter(gallery.chip_codes_of(tagged))
    chips = [next(codes) if o is not None else ([], []) for o in ordinals]
    return result_cards(ids, scores, chips, gallery.word_pairs, words, MEANING_SCORE), len(ids)


def public(text: str | None, gallery) -> str | None:
    """A message as an HTTP answer may show it: the workspace's folder and any other absolute path
    (a library's file, FAISS's C++ source) cut to a name; the server's log keeps the full text."""
    if text is None:
        return None
    return without_paths(str(text).replace(str(gallery.ws.root), gallery.ws.root.name))


def meaning_search(similarity: Similarity, gallery, text: str, words: list[str], k: int, page: int = 1,
                   as_html: bool = False) -> dict:
    """One page of a ranking by meaning (within the words' photos), ranked from the request's snapshot:
    JSON results, or (as_html) the grid's cards; raises QueryModelUnavailable / NoEmbeddings / DamagedTable / ValueError."""
    known = gallery.known_words()
    ranked = similarity.text_search(text, k, word_filter_ids(gallery, words), gallery.embeddings,
                                    gallery.embedding_rows, skip=(page - 1) * k)
    total = ranked.total or 0
    answer = {"mode": "meaning", "text": text.strip(), "words": words, "unknown": [w for w in words if w not in known],
              "model_id": public(ranked.model_id, gallery), "index": ranked.index, "note": public(ranked.note, gallery),
              "total": total, "page": page, "per_page": k, "pages": -(-total // k)}
    if as_html:
        cards, shown = meaning_cards(gallery, ranked, words)
        return {**answer, "cards": cards, "shown": shown}
    return {**answer, "results": results(gallery, ranked)}


def page_context(similarity: Similarity, gallery, text: str, words: list[str], k: int, page: int = 1) -> dict:
    """What the home page shows for a phrase: the ranked photos, or why meaning search is off."""
    if not text.strip():
        return {"meaning": None}
    try:
        return {"meaning": meaning_search(similarity, gallery, text, words, k, page, as_html=True)}
    except (QueryModelUnavailable, NoEmbeddings, ValueError) as error:
        return {"meaning": {"mode": "meaning", "text": text.strip(), "words": words, "unavailable": public(str(error), gallery)}}
    except DamagedTable as error:
        return {"meaning": {"mode": "meaning", "text": text.strip(), "words": words, "unavailable": error.public}}


def split_query(q: str, known) -> tuple[list[str], str]:
    """The search box: a vocabulary word (bare or facet:tag) adds a word; anything else is a phrase."""
    q = q.strip()
    if not q:
        return [], ""
    return ([q], "") if q in known else ([], q)


def api_text_search(similarity: Similarity, gallery, text: str, words: list[str], k: int, page: int = 1) -> JSONResponse:
    """`/api/search?text=`: 503 with the reason when the model cannot be loaded (word search still answers)."""
    try:
        return JSONResponse(meaning_search(similarity, gallery, text, words, k, page))
    except QueryModelUnavailable as error:
        raise HTTPException(503, public(str(error), gallery)) from error
    except NoEmbeddings as error:
        raise HTTPException(409, public(str(error), gallery)) from error
    except DamagedTable as error:
        raise HTTPException(503, error.public) from error
    except ValueError as error:
        raise HTTPException(422, public(str(error), gallery)) from error


def similar_strip(similarity: Similarity, gallery, image_id: str, k: int = SIMILAR_SHOWN) -> dict:
    """The photo page's "more like this": results, or why there are none."""
    try:
        ranked = similarity.similar(image_id, k, gallery.embeddings, gallery.embedding_rows)
    except NoEmbeddings as error:
        return {"results": [], "empty": public(str(error), gallery)}
    except DamagedTable as error:
        return {"results": [], "empty": error.public}
    except KeyError:
        return {"results": [], "empty": "this photo has no embedding yet: rerun `alienstay tag`."}
    return {"results": results(gallery, ranked), "index": ranked.index, "model_id": public(ranked.model_id, gallery),
            "empty": None}


router = APIRouter()


@router.get("/api/similar/{image_id:id}")
def api_similar(image_id: str, k: int = Query(SIMILAR_SHOWN, ge=1, le=200), here: Site = Depends(site)) -> JSONResponse:
    """The k photos nearest this one by meaning (its copies left out)."""
    current = here.fresh()
    if image_id not in current.catalog:
        raise HTTPException(404, f"{image_id!r} is not a usable photo of this workspace")
    try:
        ranked = here.similarity.similar(image_id, k, current.embeddings, current.embedding_rows)
    except NoEmbeddings as error:
        raise HTTPException(409, public(str(error), current)) from error
    except DamagedTable as error:
        raise HTTPException(503, error.public) from error
    except KeyError as error:
        raise HTTPException(404, f"{image_id!r} has no embedding yet: rerun `alienstay tag`.") from error
    return JSONResponse({"image_id": image_id, "k": k, "index": ranked.index, "model_id": public(ranked.model_id, current),
                         "note": public(ranked.note, current), "results": results(current, ranked)})


__all__ = ["MAX_TEXT", "router", "page_context", "api_text_search", "similar_strip", "split_query"]
