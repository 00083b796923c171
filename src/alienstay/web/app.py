"""The web gallery: search photos by alien words, see a photo's tags, compare its restyles.

`create_app(workspace)` builds a FastAPI app over one workspace; `alienstay serve` runs it with
uvicorn (web/serving.py: one or several worker processes). The app holds one `Site` (web/site.py:
the workspace's tables, the similarity service, the templates and the pieces of a page rendered
once) and includes the routes, each module an APIRouter whose routes take the Site as a
dependency: pages (routes_pages.py), JSON under /api (routes_api.py; "more like this" in
search_api.py) and images by id only (routes_media.py: a URL never names a file path).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from alienstay.web import routes_api, routes_media, routes_pages, search_api
from alienstay.web.site import HERE, Site


def create_app(workspace: Path) -> FastAPI:
    """A gallery over ``workspace``; the tables are read now and re-read when they change."""
    site = Site(Path(workspace))
    # FastAPIOffline: /docs and /redoc from assets in its wheel, not a CDN (the nav's "API" link works offline)
    app = FastAPIOffline(title="alienstay gallery", description=f"workspace {site.ws.root.name}")  # no path in an answer
    app.state.site = site
    app.state.gallery, app.state.similarity = site.data, site.similarity
    app.state.templates = site.templates  # `alienstay serve` compiles them before a worker answers (web/serving.py)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for routes in (search_api.router, routes_pages.router, routes_media.router, routes_api.router):
        app.include_router(routes)
    return app
