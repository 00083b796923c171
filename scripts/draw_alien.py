"""Draw the alien guest from the persona's description: docs/figures/alien.svg and alien.png.

    python scripts/draw_alien.py [OUT_DIR]

A vector illustration drawn by code (src/alienstay/persona/illustration.py), for machines without
text-to-image weights; `alienstay persona` renders the diffusion portrait where they exist.
"""

from __future__ import annotations

import sys
from pathlib import Path

from alienstay.persona.illustration import draw

REPO = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "figures"
    for path in draw(out):
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")
