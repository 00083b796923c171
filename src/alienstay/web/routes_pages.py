"""The gallery's HTML pages: the home page (browse, word search, search by meaning), a photo, the edits.

Pages are server-rendered Jinja2 and work without JavaScript (the small script only adds
type-ahead and the before/after slider). Each route takes the app's `Site` as a dependency
(web/site.py) and reads one snapshot of the tables from start to end.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from alienstay.web import edit_views, search_api
from alienstay.web.site import MAX_PAGE, RESULTS_SHOWN, Site, site, with_media, words_or_422

View = Literal["guest", "staff"]
router = APIRouter()


@router.get("/", response_class=HTMLResponse)
async def index(
    request: Request, words: str = "", page: int = Query(1, ge=1, le=MAX_PAGE),
    per_page: int = Query(RESULTS_SHOWN, ge=1, le=500),
    q: str = Query("", max_length=search_api.MAX_TEXT), text: str = Query("", max_length=search_api.MAX_TEXT),
    here: Site = Depends(site),
) -> HTMLResponse:
    gallery = await here.current()
    known = gallery.known_words()
    typed_word, phrase = search_api.split_query(q, known)  # the search box: a word, or a phrase
    asked = list(dict.fromkeys(words_or_422(words) + typed_word))
    chosen = [w for w in asked if w in known]  # unknown words are dropped, and said so
    found = here.word_search(gallery, chosen, page, per_page, as_html=True) if chosen else None
    # Only a phrase needs the model (and maybe the thread pool); without one, page_context's empty answer.
    meaning = ({"meaning": None} if not (text or phrase).strip() else await here.by_meaning(
        search_api.page_context, gallery, text or phrase, chosen, per_page, page))
    by_meaning = bool(meaning["meaning"]) and not meaning["meaning"].get("unavailable")
    browse = [] if chosen or by_meaning else gallery.browse(per_page)[0]
    context = {**meaning,
        "words": chosen, "dropped": [w for w in asked if w not in known], "found": found, "browse": browse,
        "photos": len(gallery.catalog), "browse_html": here.browse_html(gallery, per_page) if browse else "",
        "vocabulary_html": here.vocabulary_html(gallery), "facets_html": here.facets_html(gallery, chosen),
        "has_tags": gallery.index is not None, "has_catalog": here.ws.catalog_path.exists(),
        "tagger": gallery.tagger, "examples": gallery.example_words(),
    }
    return here.templates.TemplateResponse(request, "index.html", context)


@router.get("/photo/{image_id:id}", response_class=HTMLResponse)
async def photo(request: Request, image_id: str, view: View = "guest", here: Site = Depends(site)) -> HTMLResponse:
    gallery = await here.current()
    record = here.photo_record(gallery, image_id, view == "staff")
    similar = await run_in_threadpool(search_api.similar_strip, here.similarity, gallery, image_id)
    context = {"title": image_id, "view": view, **record, "similar": similar}
    return here.templates.TemplateResponse(request, "photo.html", context)


@router.get("/edits", response_class=HTMLResponse)
def edits(request: Request, recipe: str | None = None, image: str | None = None, view: View = "guest",
          here: Site = Depends(site)) -> HTMLResponse:
    gallery = here.fresh()
    rows = edit_views.edits_rows(gallery.edit_records, recipe, image, staff=view == "staff")
    recipes = sorted(gallery.edits["recipe"].astype(str).unique()) if gallery.edits is not None else []
    hidden = len(edit_views.edits_rows(gallery.edit_records, recipe, image, staff=True)) - len(rows)
    context = {
        "title": "edits", "groups": edit_views.edit_groups(with_media(rows)), "recipes": recipes, "view": view,
        "recipe": recipe, "image": image, "hidden": hidden,
        "has_edits": gallery.edits is not None and len(gallery.edits) > 0,
    }
    return here.templates.TemplateResponse(request, "edits.html", context)
