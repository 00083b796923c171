"""What the gallery's routes share: one `Site` an app holds, handed to each route as a dependency.

A `Site` is the workspace, its `Gallery` (one snapshot a request), the `Similarity` service, the
templates, and the pieces of a page that stay the same from one request to the next until the
word index changes (the facet chips, the vocabulary's type-ahead list, the home page's cards),
rendered once and kept. The routes (routes_pages.py, routes_api.py, routes_media.py,
search_api.py) take it with `Depends(site)`, so each route module is plain functions over it.

Word-search work is a few milliseconds of CPU and runs on the event loop (a worker thread
would only add GIL hand-offs); what may take long goes to the thread pool: re-reading a table
that changed, a search by meaning while its model may still be loading, a large page.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor

from alienstay.similarity.service import Similarity
from alienstay.web import edit_views
from alienstay.web import gallery as g
from alienstay.web.cards import browse_cards, page_url, photo_url, result_cards, tag_chips
from alienstay.wordindex import lookup as wordindex
from alienstay.workspace.layout import Workspace

HERE = Path(__file__).parent
RESULTS_SHOWN = 120  # photos on one results page
MAX_WORDS = 32  # words in one search; past it the request is refused (422), so a page stays small
MAX_PAGE = 100_000
LOOP_PAGE = 500  # a results page up to this size is answered on the event loop, a larger one in the thread pool
CACHED_PAGES = 512  # rendered pieces kept a site; past it the cache starts again


class IdConvertor(Convertor):
    """An image id as the rest of the path, newlines included (`{x:path}` is `.*`, which stops at one)."""

    regex = "[\\s\\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("id", IdConvertor())  # before any route module declares `{image_id:id}`


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


def with_media(rows: list[dict]) -> list[dict]:
    """Edit rows with the URLs of their image and of the original photo (by id: no file path)."""
    return [{**r, "image": f"/media/edit/{quote(str(r['edit_id']), safe='')}", "original": photo_url(str(r["image_id"]))}
            for r in rows]


class Site:
    """One workspace's gallery as the routes see it (built once an app by `create_app`)."""

    def __init__(self, workspace: Path) -> None:
        from fastapi.templating import Jinja2Templates

        self.ws = Workspace(Path(workspace))
        self.similarity = Similarity(self.ws)  # search by meaning, more like this (search_api.py)
        self.data = g.Gallery(self.ws, self.similarity)  # one snapshot a request: tables, word index, embeddings
        self.definitions = vocabulary_definitions()
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.globals.update(
            photo_url=photo_url, page_url=page_url, search_url=search_url, toggled=toggled, tag_chips=tag_chips,
            workspace=self.ws.root.name, metric_columns=g.METRIC_COLUMNS,
        )
        self._pieces: dict[tuple, tuple[object, object]] = {}  # (kind, id(owner), ...) -> (owner, rendered piece)

    # ---- the snapshot a request reads
    def fresh(self) -> g.Snapshot:
        """The tables as the files are now, re-read here if one changed (for routes in the thread pool)."""
        return self.data.refresh()

    async def current(self) -> g.Snapshot:
        """The tables as the files are now (one snapshot a request); a changed table is re-read in the thread pool."""
        return await run_in_threadpool(self.data.refresh) if self.data.stale() else self.data.current

    # ---- pieces of a page, rendered once a snapshot
    def _piece(self, kind: str, owner: object, make: Callable[[], Any], *key: object) -> Any:
        """A rendered piece for `owner` (an index, a snapshot): kept with the owner itself, so a new
        object at a freed one's address never finds the old piece."""
        found = self._pieces.get((kind, id(owner), *key))
        if found is None or found[0] is not owner:
            # A new index or snapshot: its kind's pieces of older ones go, and the files they map with them.
            for stale in [k for k, (o, _) in self._pieces.items() if k[0] == kind and o is not owner]:
                del self._pieces[stale]
            if len(self._pieces) >= CACHED_PAGES:
                self._pieces.clear()
            found = self._pieces[(kind, id(owner), *key)] = (owner, make())
        return found[1]

    def groups(self, gallery: g.Snapshot) -> list[dict]:
        """The vocabulary's facets with their words' photo counts (the same until the index changes)."""
        return self._piece("groups", gallery.index, lambda: g.vocabulary_groups(gallery.words, self.definitions))

    def facets_html(self, gallery: g.Snapshot, words: list[str]) -> Markup:
        """The facet chips: the same for every request with these words until the index changes."""
        return self._piece("facets", gallery.index, lambda: Markup(
            self.templates.get_template("_facets.html").render(groups=self.groups(gallery), words=words)), tuple(words))

    def vocabulary_html(self, gallery: g.Snapshot) -> Markup:
        """The search box's type-ahead list of every word: a few hundred options, rendered once an index."""
        return self._piece("vocabulary", gallery.index, lambda: Markup(
            self.templates.get_template("_vocabulary.html").render(groups=self.groups(gallery))))

    def browse_html(self, gallery: g.Snapshot, per_page: int) -> Markup:
        """The home page's cards without words: rendered once a snapshot and page size, not once a request."""
        return self._piece("browse", gallery, lambda: browse_cards(*gallery.browse(per_page)), per_page)

    # ---- answers
    async def by_meaning(self, function: Callable[..., Any], gallery: g.Snapshot, text: str, words: list[str], k: int,
                         page: int) -> Any:
        """A search by meaning: on the event loop once the query model is loaded (~10 ms of CPU: in the
        thread pool it only fought the loop for the GIL, and stretched under load), in the thread pool
        while it may still have to load (seconds that no other route waits behind) or for a large page."""
        if self.similarity.model_ready() and k <= LOOP_PAGE:
            return function(self.similarity, gallery, text, words, k, page)
        return await run_in_threadpool(function, self.similarity, gallery, text, words, k, page)

    def word_search(self, gallery: g.Snapshot, words: list[str], page: int = 1, per_page: int = RESULTS_SHOWN,
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

    def photo_record(self, gallery: g.Snapshot, image_id: str, staff: bool = False) -> dict:
        """A photo's catalog row, tags by facet, cluster and its neighbours, and edits; 404 if not usable."""
        if image_id not in gallery.catalog:
            raise HTTPException(404, f"{image_id!r} is not a usable photo of this workspace")
        return {
            "image_id": image_id, "image": photo_url(image_id),
            "catalog": gallery.catalog_info(image_id),
            "tags": gallery.tags_by_facet(image_id),
            "cluster": gallery.cluster_of(image_id),
            "neighbours": [{"image_id": i, "image": photo_url(i), "page": page_url(i)}
                           for i in gallery.cluster_neighbours(image_id) if i in gallery.catalog],
            "edits": with_media(edit_views.edits_rows(gallery.edit_records, image_id=image_id, staff=staff)),
        }


def site(request: Request) -> Site:
    """The dependency every route takes: the app's one Site."""
    return request.app.state.site
