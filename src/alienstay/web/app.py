"""The web gallery: search photos by alien words, see a photo's tags, compare its restyles.

`create_app(workspace)` builds a FastAPI app over one workspace; `alienstay serve` runs it with
uvicorn. Pages are server-rendered Jinja2 (they work without JavaScript; the small script only
adds type-ahead and the before/after slider). The same data is served as JSON under /api.

Images are served by id only: /media/photo/{image_id} looks the photo up in the catalog and
/media/edit/{edit_id} in the edits table, and a file is sent only if it lies inside the
workspace. A URL can never name a file path, so there is nothing to traverse.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from alienstay.web import gallery as g
from alienstay.workspace import Workspace

HERE = Path(__file__).parent
RESULTS_SHOWN = 120  # photos on one results page


def vocabulary_definitions() -> dict[tuple[str, str], str]:
    """Word definitions for tooltips, from the packaged vocabulary when it can be read."""
    try:
        from alienstay.vocabulary import VocabularyError, load_vocabulary

        vocabulary = load_vocabulary()
    except (ImportError, OSError, VocabularyError):
        return {}
    return {(w.facet, w.tag): w.definition for w in vocabulary.words}


def photo_url(image_id: str) -> str:
    return "/media/photo/" + quote(image_id, safe="/")


def page_url(image_id: str) -> str:
    return "/photo/" + quote(image_id, safe="/")


def search_url(words: list[str]) -> str:
    return "/?words=" + quote(",".join(words), safe=",:") if words else "/"


def toggled(words: list[str], word: str) -> list[str]:
    return [w for w in words if w != word] if word in words else [*words, word]


def create_app(workspace: Path) -> FastAPI:
    """A gallery over ``workspace``; the tables are read now and re-read when they change."""
    ws = Workspace(Path(workspace))
    data = g.Gallery(ws)
    definitions = vocabulary_definitions()
    app = FastAPI(title="alienstay gallery", description=f"workspace {ws.root}")
    app.state.gallery = data
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(
        photo_url=photo_url, page_url=page_url, search_url=search_url, toggled=toggled,
        workspace=str(ws.root), metric_columns=g.METRIC_COLUMNS,
    )

    def fresh() -> g.Gallery:
        data.refresh()
        return data

    def run_search(words: list[str], limit: int) -> dict:
        gallery = fresh()
        unknown = [w for w in words if w not in g.known_words(gallery.words)]
        ranked = g.search(gallery.index, words)
        ranked = ranked[ranked["image_id"].isin(gallery.catalog.index)]
        shown = ranked.head(limit)
        chips = g.selected_tags_of(gallery.tags, shown["image_id"].tolist())
        results = [
            {"image_id": r.image_id, "score": round(float(r.score), 4), "tags": chips[r.image_id],
             "image": photo_url(r.image_id), "page": page_url(r.image_id)}
            for r in shown.itertuples(index=False)
        ]
        return {"words": words, "unknown": unknown, "total": int(len(ranked)), "results": results}

    # ---- pages ------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def index(request: Request, words: str = "") -> HTMLResponse:
        gallery = fresh()
        chosen = g.parse_words(words)
        found = run_search(chosen, RESULTS_SHOWN) if chosen else None
        browse = [] if chosen else gallery.catalog["image_id"].astype(str).tolist()[:RESULTS_SHOWN]
        context = {
            "words": chosen, "found": found, "browse": browse, "photos": len(gallery.catalog),
            "browse_tags": g.selected_tags_of(gallery.tags, browse),
            "groups": g.vocabulary_groups(gallery.words, definitions),
            "has_tags": gallery.tags is not None, "has_catalog": ws.catalog_path.exists(),
        }
        return templates.TemplateResponse(request, "index.html", context)

    @app.get("/photo/{image_id:path}", response_class=HTMLResponse)
    def photo(request: Request, image_id: str) -> HTMLResponse:
        context = {"title": image_id, **photo_record(image_id)}
        return templates.TemplateResponse(request, "photo.html", context)

    @app.get("/edits", response_class=HTMLResponse)
    def edits(request: Request, recipe: str | None = None, image: str | None = None) -> HTMLResponse:
        gallery = fresh()
        rows = g.edits_rows(gallery.edits, recipe, image)
        recipes = sorted(gallery.edits["recipe"].astype(str).unique()) if gallery.edits is not None else []
        context = {
            "title": "edits", "groups": g.edit_groups(with_media(rows)), "recipes": recipes,
            "recipe": recipe, "image": image, "has_edits": gallery.edits is not None and len(gallery.edits) > 0,
        }
        return templates.TemplateResponse(request, "edits.html", context)

    # ---- media: by id only -------------------------------------------------------------
    @app.get("/media/photo/{image_id:path}")
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

    # ---- JSON API -----------------------------------------------------------------------
    @app.get("/api/tags")
    def api_tags() -> dict:
        return {"facets": g.vocabulary_groups(fresh().words, definitions)}

    @app.get("/api/search")
    def api_search(words: str = "", limit: int = Query(RESULTS_SHOWN, ge=1, le=10_000)) -> dict:
        return run_search(g.parse_words(words), limit)

    @app.get("/api/images/{image_id:path}")
    def api_image(image_id: str) -> dict:
        return photo_record(image_id)

    @app.get("/api/edits")
    def api_edits(recipe: str | None = None, image: str | None = None) -> dict:
        return {"edits": with_media(g.edits_rows(fresh().edits, recipe, image))}

    def photo_record(image_id: str) -> dict:
        gallery = fresh()
        if image_id not in gallery.catalog.index:
            raise HTTPException(404, f"{image_id!r} is not a usable photo of this workspace")
        return {
            "image_id": image_id, "image": photo_url(image_id),
            "catalog": g.catalog_info(gallery.catalog, image_id),
            "tags": g.tags_by_facet(gallery.tags, image_id),
            "cluster": g.cluster_of(gallery.clusters, image_id),
            "neighbours": [
                {"image_id": i, "image": photo_url(i), "page": page_url(i)}
                for i in g.cluster_neighbours(gallery.clusters, image_id)
                if i in gallery.catalog.index
            ],
            "edits": with_media(g.edits_rows(gallery.edits, image_id=image_id)),
        }

    def with_media(rows: list[dict]) -> list[dict]:
        return [
            {**r, "image": f"/media/edit/{quote(str(r['edit_id']), safe='')}", "original": photo_url(str(r["image_id"]))}
            for r in rows
        ]

    return app
