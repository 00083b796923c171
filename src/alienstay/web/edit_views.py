"""The edits as the gallery shows them: JSON-ready rows without file columns, filtered and grouped."""

from __future__ import annotations

import pandas as pd

from alienstay.web.tables import jsonable

# Verdicts a guest never sees: the edit changed the room too much, or did not change it at all.
HIDDEN_FROM_GUESTS = frozenset({"too_strong", "not_applied"})
# Columns of the edits table that name files: never shown, the media URLs stand for them.
EDIT_FILE_COLUMNS = ("output_path", "source_path", "mask_path")


def edit_records(edits: pd.DataFrame | None) -> list[dict]:
    """Edit rows as JSON-ready dicts without the columns that name files (read once a change)."""
    if edits is None or edits.empty:
        return []
    rows = edits.drop(columns=[c for c in EDIT_FILE_COLUMNS if c in edits.columns])
    return [jsonable(clean_na(r)) for r in rows.to_dict("records")]


def edits_rows(records: list[dict], recipe: str | None = None, image_id: str | None = None, staff: bool = False) -> list[dict]:
    """The edits to show; guests do not see those judged too strong or not applied."""
    return [
        r for r in records
        if (not recipe or r.get("recipe") == recipe) and (not image_id or r.get("image_id") == image_id)
        and (staff or r.get("verdict") not in HIDDEN_FROM_GUESTS)
    ]


def clean_na(record: dict) -> dict:
    return {k: (None if v is pd.NA or v is pd.NaT else v) for k, v in record.items()}


def edit_groups(edits: list[dict]) -> list[dict]:
    """Edits grouped by recipe, then by source photo, values in table order: the compare view's rows."""
    groups: dict[str, dict[str, list[dict]]] = {}
    for edit in edits:
        groups.setdefault(str(edit["recipe"]), {}).setdefault(str(edit["image_id"]), []).append(edit)
    return [
        {"recipe": recipe, "photos": [{"image_id": i, "edits": e} for i, e in photos.items()]}
        for recipe, photos in groups.items()
    ]
