"""The gallery's images, served by id only: a URL can never name a file path, so there is nothing to traverse.

/media/photo/{image_id} looks the photo up in the catalog and /media/edit/{edit_id} in the edits
table, and a file is sent only if it lies inside the workspace (gallery.inside_workspace).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse

from alienstay.web.site import Site, site

router = APIRouter()


@router.get("/media/photo/{image_id:id}")
def photo_file(image_id: str, here: Site = Depends(site)) -> FileResponse:
    path = here.fresh().photo_file(image_id)
    if path is None:
        raise HTTPException(404, f"no prepared photo in this workspace for {image_id!r}")
    return FileResponse(path)


@router.get("/media/edit/{edit_id}")
def edit_file(edit_id: str, here: Site = Depends(site)) -> FileResponse:
    path = here.fresh().edit_file(edit_id)
    if path is None:
        raise HTTPException(404, f"no edited image in this workspace for {edit_id!r}")
    return FileResponse(path)
