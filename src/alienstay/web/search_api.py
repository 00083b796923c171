"""The gallery's embedding side: search by meaning and "more like this" (routes and page pieces).

Kept apart from the word search (app.py, gallery.py, wordindex.py): this module only reads the
tag stage's embeddings through `alienstay.similarity`. A phrase that is not an alien word is
searched by meaning, ranked by cosine with the tag stage's own model, and may be combined with
word filters (only photos with every word among their selected tags are ranked). When that model
cannot be loaded here, the page and the API say so and word search works as before.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse

from alienstay.similarity.query import MAX_TEXT, QueryModelUnavailable
from alienstay.similarity.service import NoEmbeddings, Ranked, Similarity
from alienstay.storage import without_paths
from alienstay.web import wordindex
from alienstay.workspace import DamagedTable
from alienstay.web.cards import page_url, photo_url

SIMILAR_SHOWN = 12


def word_filter_ids(gallery, words: list[str]) -> pa.Array | None:
    """Every usable photo with all the words selected (None: no word filter), as an Arrow array of ids."""
    if not words:
        return None
    index = gallery.index
    if index is None:
        return pa.array([], pa.string())
    found = wordindex.search(index, words, gallery.usable, 0, max(index.size, 1))
    return index.ids.take(pa.array(np.asarray(found.ordinals, dtype=np.int64)))


def results(gallery, ranked: Ranked) -> list[dict]:
    chips = gallery.selected_tags_of(ranked.ids)
    return [
        {"image_id": i, "score": round(s, 4), "tags": chips.get(i, []), "image": photo_url(i), "page": page_url(i)}
        for i, s in zip(ranked.ids, ranked.scores)
        if i in gallery.catalog
    ]


def public(text: str | None, gallery) -> str | None:
    """A message as an HTTP answer may show it: the workspace's folder and any other absolute path
    (a library's file, FAISS's C++ source) cut to a name; the server's log keeps the full text."""
    if text is None:
        return None
    return without_paths(str(text).replace(str(gallery.ws.root), gallery.ws.root.name))


def meaning_search(similarity: Similarity, gallery, text: str, words: list[str], k: int, page: int = 1) -> dict:
    """One page of a ranking by meaning (within the words' photos), ranked from the request's snapshot;
    raises QueryModelUnavailable / NoEmbeddings / DamagedTable / ValueError."""
    known = gallery.known_words()
    ranked = similarity.text_search(text, k, word_filter_ids(gallery, words), gallery.embeddings,
                                    gallery.embedding_rows, skip=(page - 1) * k)
    shown = results(gallery, ranked)
    total = ranked.total or 0
    return {"mode": "meaning", "text": text.strip(), "words": words, "unknown": [w for w in words if w not in known],
            "model_id": public(ranked.model_id, gallery), "index": ranked.index, "note": public(ranked.note, gallery),
            "total": total, "page": page, "per_page": k, "pages": -(-total // k), "results": shown}


def page_context(similarity: Similarity, gallery, text: str, words: list[str], k: int, page: int = 1) -> dict:
    """What the home page shows for a phrase: the ranked photos, or why meaning search is off."""
    if not text.strip():
        return {"meaning": None}
    try:
        return {"meaning": meaning_search(similarity, gallery, text, words, k, page)}
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


def router(similarity: Similarity, gallery: Callable[[], object]) -> APIRouter:
    """GET /api/similar/{image_id}?k=12 (the gallery's other routes stay in app.py)."""
    api = APIRouter()

    @api.get("/api/similar/{image_id:id}")
    def api_similar(image_id: str, k: int = Query(SIMILAR_SHOWN, ge=1, le=200)) -> JSONResponse:
        current = gallery()
        if image_id not in current.catalog:
            raise HTTPException(404, f"{image_id!r} is not a usable photo of this workspace")
        try:
            ranked = similarity.similar(image_id, k, current.embeddings, current.embedding_rows)
        except NoEmbeddings as error:
            raise HTTPException(409, public(str(error), current)) from error
        except DamagedTable as error:
            raise HTTPException(503, error.public) from error
        except KeyError as error:
            raise HTTPException(404, f"{image_id!r} has no embedding yet: rerun `alienstay tag`.") from error
        return JSONResponse({"image_id": image_id, "k": k, "index": ranked.index, "model_id": public(ranked.model_id, current),
                             "note": public(ranked.note, current), "results": results(current, ranked)})

    return api


__all__ = ["MAX_TEXT", "router", "page_context", "api_text_search", "similar_strip", "split_query"]
