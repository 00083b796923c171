"""Write a generated docs page, or with --check fail when the committed one is stale."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_or_check(doc: Path, text: str, command: str) -> int:
    """0 when written or up to date; 1 (naming `command`, which regenerates it) when --check finds it stale."""
    if "--check" in sys.argv:
        if not doc.exists() or doc.read_text(encoding="utf-8") != text:
            print(f"{doc.relative_to(REPO)} is stale: run `{command}`", file=sys.stderr)
            return 1
        return 0
    doc.write_text(text, encoding="utf-8")
    print(f"wrote {doc.relative_to(REPO)}")
    return 0
