"""The gallery's data as JSON under /api: the vocabulary, word search (and by meaning), a photo, the edits.

Answers are built as plain JSON through orjson (search_api.JSONResponse: no per-field encoder
walk). "More like this" (/api/similar) lives with the rest of the embedding side in search_api.py.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from alienstay.web import edit_views, search_api
from alienstay.web.search_api import JSONResponse
from alienstay.web.site import LOOP_PAGE, MAX_PAGE, RESULTS_SHOWN, Site, site, with_media, words_or_422

View = Literal["guest", "staff"]
router = APIRouter()


@router.get("/api/tags")
async def api_tags(here: Site = Depends(site)) -> JSONResponse:
    return JSONResponse({"facets": here.groups(await here.current())})


@router.get("/api/search")
async def api_search(
    words: str = "", page: int = Query(1, ge=1, le=MAX_PAGE), per_page: int = Query(RESULTS_SHOWN, ge=1, le=10_000),
    limit: int | None = Query(None, ge=1, le=10_000, description="old name of per_page"),
    text: str = Query("", max_length=search_api.MAX_TEXT, description="a phrase: ranked by meaning within the words' photos"),
    here: Site = Depends(site),
) -> JSONResponse:
    asked, gallery, size = words_or_422(words), await here.current(), limit or per_page
    if text.strip():
        return await here.by_meaning(search_api.api_text_search, gallery, text, asked, size, page)
    if size > LOOP_PAGE:  # thousands of results' chips and JSON: tens of ms, not on the event loop
        return JSONResponse(await run_in_threadpool(here.word_search, gallery, asked, page, size))
    return JSONResponse(here.word_search(gallery, asked, page, size))


@router.get("/api/images/{image_id:id}")
async def api_image(image_id: str, view: View = "guest", here: Site = Depends(site)) -> JSONResponse:
    return JSONResponse(here.photo_record(await here.current(), image_id, view == "staff"))


@router.get("/api/edits")
def api_edits(recipe: str | None = None, image: str | None = None, view: View = "guest",
              here: Site = Depends(site)) -> JSONResponse:
    return JSONResponse({"edits": with_media(edit_views.edits_rows(here.fresh().edit_records, recipe, image,
                                                                    staff=view == "staff"))})
