"""The web gallery: search photos by alien words, see a photo's tags, compare its restyles.

`create_app(workspace)` builds a FastAPI app over one workspace; `alienstay serve` runs it with
uvicorn (web/serving.py: one or several worker processes). Pages are server-rendered Jinja2
(they work without JavaScript; the small script only adds type-ahead and the before/after
slider). The same data is served as JSON under /api.

Images are served by id only: /media/photo/{image_id} looks the photo up in the catalog and
/media/edit/{edit_id} in the edits table, and a file is sent only if it lies inside the
workspace. A URL can never name a file path, so there is nothing to traverse.

The word-search routes are `async`: their work is a few milliseconds of CPU, which a worker
thread would only add GIL hand-offs to, so they run on the event loop one after another. What
may take long goes to the thread pool: re-reading a table that changed, search by meaning (a
model forward), "more like this" (an embedding index that loads on first use).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from fastapi_offline import FastAPIOffline
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor

from alienstay.similarity.service import Similarity
from alienstay.web import gallery as g
from alienstay.web import edit_views, search_api
from alienstay.web.cards import (
    browse_cards,
    page_url,
    photo_url,
    result_cards,
    tag_chips,
)
from alienstay.web.search_api import JSONResponse
from alienstay.wordindex import lookup as wordindex
from alienstay.workspace.layout import Workspace

HERE = Path(__file__).parent
RESULTS_SHOWN = 120  # photos on one results page
MAX_WORDS = 32  # words in one search; past it the request is refused (422), so a page stays small
MAX_PAGE = 100_000
LOOP_PAGE = 500  # a results page up to this size is answered on the event loop, a larger one in the thread pool
View = Literal["guest", "staff"]


class IdConvertor(Convertor):
    """An image id as the rest of the path, newlines included (`{x:path}` is `.*`, which stops at one)."""

    regex = "[\\s\\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("id", IdConvertor())


def vocabulary_definitions() -> dict[tuple[str, str], str]:
    """Word definitions for tooltips, from the packaged vocabulary when it can be read."""
    try:
        from alienstay.vocabulary.words import VocabularyError, load_vocabulary

        vocabulary = load_vocabulary()
    except (ImportError, OSError, VocabularyError):
        return {}
    return {(w.facet, w.tag): w.definition for w in vocabulary.words}


def search_url(words: list[str]) -> str:
    return "/?words=" + quote(",".join(words), safe=",:") if words else "/"


def toggled(words: list[str], word: str) -> list[str]:
    return [w for w in words if w != word] if word in words else [*words, word]


def words_or_422(text: str) -> list[str]:
    words = g.parse_words(text)
    if len(words) > MAX_WORDS:
        raise HTTPException(422, f"{len(words)} words asked; a search takes at most {MAX_WORDS}: remove some.")
    return words


def create_app(workspace: Path) -> FastAPI:
    """A gallery over ``workspace``; the tables are read now and re-read when they change."""
    ws = Workspace(Path(workspace))
    similarity = Similarity(ws)  # search by meaning, more like this (search_api.py)
    data = g.Gallery(ws, similarity)  # one snapshot a request: tables, word index and embeddings of one generation
    definitions = vocabulary_definitions()
    # FastAPIOffline: /docs and /redoc from assets in its wheel, not a CDN (the nav's "API" link works offline)
    app = FastAPIOffline(title="alienstay gallery", description=f"workspace {ws.root.name}")  # no path in an answer
    app.state.gallery, app.state.similarity = data, similarity
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    app.state.templates = templates  # `alienstay serve` compiles them before a worker answers (web/serving.py)
    templates.env.globals.update(
        photo_url=photo_url, page_url=page_url, search_url=search_url, toggled=toggled, tag_chips=tag_chips,
        workspace=ws.root.name, metric_columns=g.METRIC_COLUMNS,
    )

    facets_cache: dict[tuple, Markup] = {}

    def facets_html(gallery: g.Snapshot, words: list[str]) -> Markup:
        """The facet chips: the same for every request with these words until the index changes."""
        key = (tuple(words), gallery.index and gallery.index.folder.name)
        if key not in facets_cache:
            if len(facets_cache) >= 512:
                facets_cache.clear()
            groups = g.vocabulary_groups(gallery.words, definitions)
            facets_cache[key] = Markup(templates.get_template("_facets.html").render(groups=groups, words=words))
        return facets_cache[key]

    browse_cache: dict[int, tuple[g.Snapshot, Markup]] = {}

    def browse_html(gallery: g.Snapshot, per_page: int) -> Markup:
        """The home page's cards without words: rendered once a snapshot and page size, not once a request."""
        cached = browse_cache.get(per_page)
        if cached is None or cached[0] is not gallery:
            if len(browse_cache) >= 8:
                browse_cache.clear()
            ids, tags = gallery.browse(per_page)
            cached = browse_cache[per_page] = (gallery, browse_cards(ids, tags))
        return cached[1]

    async def by_meaning_call(function, sim: Similarity, gallery: g.Snapshot, text: str, words: list[str], k: int, page: int):
        """A search by meaning: on the event loop once the query model is loaded (~10 ms of CPU: in the
        thread pool it only fought the loop for the GIL, and stretched under load), in the thread pool
        while it may still have to load (seconds that no other route waits behind) or for a large page."""
        if sim.model_ready() and k <= LOOP_PAGE:
            return function(sim, gallery, text, words, k, page)
        return await run_in_threadpool(function, sim, gallery, text, words, k, page)

    def fresh() -> g.Snapshot:
        return data.refresh()

    async def current() -> g.Snapshot:
        """The tables as the files are now (one snapshot a request); a changed table is re-read in the thread pool."""
        return await run_in_threadpool(data.refresh) if data.stale() else data.current

    app.include_router(search_api.router(similarity, fresh))

    def run_search(gallery: g.Snapshot, words: list[str], page: int = 1, per_page: int = RESULTS_SHOWN,
                   as_html: bool = False) -> dict:
        """One page of a word search: JSON results, or (as_html) the results grid's cards."""
        known = gallery.known_words()
        unknown = [w for w in words if w not in known]
        found = wordindex.search(gallery.index, words, gallery.usable, (page - 1) * per_page, per_page)
        ordinals = found.ordinals.tolist()
        ids = gallery.index.ids_of(found.ordinals) if ordinals else []
        scores = [round(float(s), 4) for s in found.scores.tolist()]
        answer = {"words": words, "unknown": unknown, "total": found.total, "counts": {w: gallery.count(w) for w in words},
                  "page": page, "per_page": per_page, "pages": -(-found.total // per_page)}
        if as_html:
            return {**answer, "cards": result_cards(ids, scores, gallery.chip_codes_of(ordinals), gallery.word_pairs, words)}
        chips = gallery.selected_tags_of(ids, ordinals)
        return {**answer, "results": [{"image_id": i, "score": s, "tags": chips[i], "image": photo_url(i), "page": page_url(i)}
                                      for i, s in zip(ids, scores)]}

    # ---- pages ------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    async def index(
        request: Request, words: str = "", page: int = Query(1, ge=1, le=MAX_PAGE),
        per_page: int = Query(RESULTS_SHOWN, ge=1, le=500),
        q: str = Query("", max_length=search_api.MAX_TEXT), text: str = Query("", max_length=search_api.MAX_TEXT),
    ) -> HTMLResponse:
        gallery = await current()
        known = gallery.known_words()
        typed_word, phrase = search_api.split_query(q, known)  # the search box: a word, or a phrase
        asked = list(dict.fromkeys(words_or_422(words) + typed_word))
        chosen = [w for w in asked if w in known]  # unknown words are dropped, and said so
        found = run_search(gallery, chosen, page, per_page, as_html=True) if chosen else None
        # Only a phrase needs the model (and the thread pool); without one, page_context's empty answer.
        meaning = ({"meaning": None} if not (text or phrase).strip() else await by_meaning_call(
            search_api.page_context, similarity, gallery, text or phrase, chosen, per_page, page))
        by_meaning = bool(meaning["meaning"]) and not meaning["meaning"].get("unavailable")
        browse = [] if chosen or by_meaning else gallery.browse(per_page)[0]
        context = {**meaning,
            "words": chosen, "dropped": [w for w in asked if w not in known], "found": found, "browse": browse,
            "photos": len(gallery.catalog), "browse_html": browse_html(gallery, per_page) if browse else "",
            "groups": g.vocabulary_groups(gallery.words, definitions),
            "facets_html": facets_html(gallery, chosen),
            "has_tags": gallery.index is not None, "has_catalog": ws.catalog_path.exists(),
            "tagger": gallery.tagger, "examples": gallery.example_words(),
        }
        return templates.TemplateResponse(request, "index.html", context)

    @app.get("/photo/{image_id:id}", response_class=HTMLResponse)
    async def photo(request: Request, image_id: str, view: View = "guest") -> HTMLResponse:
        gallery = await current()
        record = photo_record(gallery, image_id, view == "staff")
        similar = await run_in_threadpool(search_api.similar_strip, similarity, gallery, image_id)
        context = {"title": image_id, "view": view, **record, "similar": similar}
        return templates.TemplateResponse(request, "photo.html", context)

    @app.get("/edits", response_class=HTMLResponse)
    def edits(request: Request, recipe: str | None = None, image: str | None = None, view: View = "guest") -> HTMLResponse:
        gallery = fresh()
        rows = edit_views.edits_rows(gallery.edit_records, recipe, image, staff=view == "staff")
        recipes = sorted(gallery.edits["recipe"].astype(str).unique()) if gallery.edits is not None else []
        hidden = len(edit_views.edits_rows(gallery.edit_records, recipe, image, staff=True)) - len(rows)
        context = {
            "title": "edits", "groups": edit_views.edit_groups(with_media(rows)), "recipes": recipes, "view": view,
            "recipe": recipe, "image": image, "hidden": hidden,
            "has_edits": gallery.edits is not None and len(gallery.edits) > 0,
        }
        return templates.TemplateResponse(request, "edits.html", context)

    # ---- media: by id only -------------------------------------------------------------
    @app.get("/media/photo/{image_id:id}")
    def photo_file(image_id: str) -> FileResponse:
        path = fresh().photo_file(image_id)
        if path is None:
            raise HTTPException(404, f"no prepared photo in this workspace for {image_id!r}")
        return FileResponse(path)

    @app.get("/media/edit/{edit_id}")
    def edit_file(edit_id: str) -> FileResponse:
        path = fresh().edit_file(edit_id)
        if path is None:
            raise HTTPException(404, f"no edited image in this workspace for {edit_id!r}")
        return FileResponse(path)

    # ---- JSON API (answers built as plain JSON: no per-field encoder walk) -----------------
    @app.get("/api/tags")
    async def api_tags() -> JSONResponse:
        return JSONResponse({"facets": g.vocabulary_groups((await current()).words, definitions)})

    @app.get("/api/search")
    async def api_search(
        words: str = "", page: int = Query(1, ge=1, le=MAX_PAGE), per_page: int = Query(RESULTS_SHOWN, ge=1, le=10_000),
        limit: int | None = Query(None, ge=1, le=10_000, description="old name of per_page"),
        text: str = Query("", max_length=search_api.MAX_TEXT, description="a phrase: ranked by meaning within the words' photos"),
    ) -> JSONResponse:
        asked, gallery, size = words_or_422(words), await current(), limit or per_page
        if text.strip():
            return await by_meaning_call(search_api.api_text_search, similarity, gallery, text, asked, size, page)
        if size > LOOP_PAGE:  # thousands of results' chips and JSON: tens of ms, not on the event loop
            return JSONResponse(await run_in_threadpool(run_search, gallery, asked, page, size))
        return JSONResponse(run_search(gallery, asked, page, size))

    @app.get("/api/images/{image_id:id}")
    async def api_image(image_id: str, view: View = "guest") -> JSONResponse:
        return JSONResponse(photo_record(await current(), image_id, view == "staff"))

    @app.get("/api/edits")
    def api_edits(recipe: str | None = None, image: str | None = None, view: View = "guest") -> JSONResponse:
        return JSONResponse({"edits": with_media(edit_views.edits_rows(fresh().edit_records, recipe, image, staff=view == "staff"))})

    def photo_record(gallery: g.Snapshot, image_id: str, staff: bool = False) -> dict:
        if image_id not in gallery.catalog:
            raise HTTPException(404, f"{image_id!r} is not a usable photo of this workspace")
        return {
            "image_id": image_id, "image": photo_url(image_id),
            "catalog": gallery.catalog_info(image_id),
            "tags": gallery.tags_by_facet(image_id),
            "cluster": gallery.cluster_of(image_id),
            "neighbours": [
                {"image_id": i, "image": photo_url(i), "page": page_url(i)}
                for i in gallery.cluster_neighbours(image_id)
                if i in gallery.catalog
            ],
            "edits": with_media(edit_views.edits_rows(gallery.edit_records, image_id=image_id, staff=staff)),
        }

    def with_media(rows: list[dict]) -> list[dict]:
        return [
            {**r, "image": f"/media/edit/{quote(str(r['edit_id']), safe='')}", "original": photo_url(str(r["image_id"]))}
            for r in rows
        ]

    return app
