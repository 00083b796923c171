"""The alien guest drawn by code: a vector illustration from the persona's own description.

`docs/aliens.md` describes the guest: tall and slender, translucent blue-violet skin across
which bioluminescent patterns drift, large dark eyes, gill frills along the neck, three long
fingers a hand. Where no text-to-image weights can be had (`alienstay persona` needs them),
this draws that description with matplotlib patches only (no raster inside the SVG), so the
picture is reproducible anywhere: `python scripts/draw_alien.py`. It is an illustration, not
a model's output, and is always captioned so.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Circle, Ellipse, FancyBboxPatch, PathPatch, Polygon  # noqa: E402
from matplotlib.path import Path as MPath  # noqa: E402
from matplotlib.transforms import Affine2D  # noqa: E402

CAPTION = "The alien guest, drawn by code from docs/aliens.md (python scripts/draw_alien.py), not by a model."
SKIN = "#7d6bf2"  # blue-violet
SKIN_LIGHT = "#b7a8ff"
SKIN_DEEP = "#4a3bb8"
GLOW = "#8ffcff"  # bioluminescent cyan
FRILL = "#e08cff"
EYE = "#0d0820"
WIDTH, HEIGHT = 100.0, 150.0  # drawing units; the figure keeps this aspect


def smooth(points: list[tuple[float, float]], closed: bool = True) -> MPath:
    """A smooth curve through the anchor points (Catmull-Rom, written as cubic Bezier segments)."""
    n = len(points)
    at = (lambda i: points[i % n]) if closed else (lambda i: points[min(max(i, 0), n - 1)])
    vertices, codes = [points[0]], [MPath.MOVETO]
    for i in range(n if closed else n - 1):
        p0, p1, p2, p3 = at(i - 1), at(i), at(i + 1), at(i + 2)
        c1 = (p1[0] + (p2[0] - p0[0]) / 6, p1[1] + (p2[1] - p0[1]) / 6)
        c2 = (p2[0] - (p3[0] - p1[0]) / 6, p2[1] - (p3[1] - p1[1]) / 6)
        vertices += [c1, c2, p2]
        codes += [MPath.CURVE4] * 3
    if closed:
        vertices.append(points[0])
        codes.append(MPath.CLOSEPOLY)
    return MPath(vertices, codes)


def limb(centre: list[tuple[float, float]], widths: list[float]) -> list[tuple[float, float]]:
    """Outline anchors around a centre line, half-width `widths[i]` at `centre[i]`, round at the end."""
    left, right = [], []
    for i, (x, y) in enumerate(centre):
        (ax_, ay), (bx, by) = centre[max(i - 1, 0)], centre[min(i + 1, len(centre) - 1)]
        dx, dy = bx - ax_, by - ay
        norm = (dx * dx + dy * dy) ** 0.5 or 1.0
        nx, ny = -dy / norm, dx / norm
        left.append((x + nx * widths[i], y + ny * widths[i]))
        right.append((x - nx * widths[i], y - ny * widths[i]))
    (x, y), (px, py) = centre[-1], centre[-2]
    dx, dy = x - px, y - py
    norm = (dx * dx + dy * dy) ** 0.5 or 1.0
    tip = (x + dx / norm * widths[-1], y + dy / norm * widths[-1])
    return left + [tip] + right[::-1]


def shape(ax, points, color, alpha=1.0, z=2.0, edge=None, lw=0.0) -> None:
    ax.add_patch(PathPatch(smooth(points), facecolor=color, edgecolor=edge or "none", lw=lw, alpha=alpha, zorder=z))


def glow_line(ax, points, z=6.0, width=1.0) -> None:
    """A luminous stroke along a smooth curve: wide faint halos under a thin bright core."""
    path = smooth(points, closed=False)
    for w, a in ((width * 6, 0.07), (width * 3, 0.16), (width, 0.9)):
        ax.add_patch(PathPatch(path, facecolor="none", edgecolor=GLOW, lw=w, alpha=a, capstyle="round", zorder=z))


def glow_dot(ax, x, y, r, z=6.0) -> None:
    for scale, a in ((3.0, 0.10), (1.8, 0.22), (1.0, 0.95)):
        ax.add_patch(Circle((x, y), r * scale, color=GLOW, alpha=a, lw=0, zorder=z))


def draw_lobby(ax) -> None:
    """A softly lit, curved lobby behind the guest (the persona's own architecture is organic)."""
    top, bottom = (0.13, 0.08, 0.26), (0.50, 0.33, 0.40)  # indigo night to warm rose
    bands = 60
    for i in range(bands):
        t = i / (bands - 1)
        color = tuple(bottom[k] + (top[k] - bottom[k]) * t for k in range(3))
        y0, y1 = HEIGHT * i / bands, HEIGHT * (i + 1) / bands + 0.3
        ax.add_patch(Polygon([(0, y0), (WIDTH, y0), (WIDTH, y1), (0, y1)], closed=True, color=color, lw=0, zorder=0))
    # a round arch and a warm lamp: soft light, no sharp corners (hypotheses A1, A4)
    for r, a in ((44, 0.07), (38, 0.08), (32, 0.10)):
        ax.add_patch(Ellipse((50, 76), 2 * r, 2.7 * r, facecolor="#ffd9a8", alpha=a, lw=0, zorder=0.5))
    ax.add_patch(Ellipse((50, 76), 66, 96, facecolor="none", edgecolor="#ffe2bd", lw=2.0, alpha=0.30, zorder=0.6))
    for r, a in ((12, 0.08), (8, 0.14), (4.5, 0.30), (2.4, 0.9)):
        ax.add_patch(Circle((86, 114), r, color="#ffe7b0", alpha=a, lw=0, zorder=0.7))
    ax.plot([86, 86], [116.4, 150], color="#f3d2a0", lw=0.8, alpha=0.5, zorder=0.7)
    for x, h in ((10, 22), (16, 30), (22, 18)):  # a curved plant by the door (A5: living plants calm them)
        ax.add_patch(PathPatch(smooth([(16, 14), ((16 + x) / 2 + 2, 14 + h / 2), (x, 14 + h)], closed=False),
                               facecolor="none", edgecolor="#3f7a6a", lw=2.2, alpha=0.7, capstyle="round", zorder=0.8))
        ax.add_patch(Ellipse((x, 14 + h), 5, 2.4, angle=30, color="#4f9a80", alpha=0.7, lw=0, zorder=0.8))
    ax.add_patch(Polygon([(0, 0), (WIDTH, 0), (WIDTH, 14), (0, 14)], closed=True, color="#2a1a3a", alpha=0.55, lw=0, zorder=0.85))
    ax.add_patch(Ellipse((16, 14), 9, 3, color="#5b3f4e", lw=0, zorder=0.86))
    ax.add_patch(Ellipse((50, 8.5), 40, 5, color="#120a20", alpha=0.45, lw=0, zorder=0.9))  # the guest's shadow


def draw_body(ax) -> None:
    for rx, ry, a in ((26, 62, 0.05), (20, 55, 0.06), (14, 48, 0.07)):  # the guest's own soft glow
        ax.add_patch(Ellipse((50, 80), 2 * rx, 2 * ry, color="#a899ff", alpha=a, lw=0, zorder=1))
    for side in (-1, 1):  # long thin legs, slightly apart, feet turned out
        ax.add_patch(PathPatch(smooth(limb([(50 + side * 3.8, 58), (50 + side * 4.6, 34), (50 + side * 5.6, 11.5)],
                                           [3.0, 2.0, 1.4])), facecolor=SKIN_DEEP, edgecolor="none", alpha=0.93, zorder=2))
        ax.add_patch(Ellipse((50 + side * 7.4, 9.6), 7.0, 2.4, angle=side * 8, color=SKIN_DEEP, alpha=0.95, lw=0, zorder=2))
    torso = [(50, 98.6), (44, 97.8), (39.5, 96.2), (37.2, 92.8), (38.2, 87), (41.4, 80), (43.6, 72), (43.9, 66),
             (43.0, 60), (44.2, 55.6), (47, 54.2), (50, 54), (53, 54.2), (55.8, 55.6), (57.0, 60), (56.1, 66),
             (56.4, 72), (58.6, 80), (61.8, 87), (62.8, 92.8), (60.5, 96.2), (56, 97.8)]
    shape(ax, torso, SKIN, alpha=0.9, z=3)
    # a lighter core where light passes through the translucent skin
    shape(ax, [(50, 94), (46, 92), (45, 84), (47, 74), (47.5, 66), (50, 62), (52.5, 66), (53, 74), (55, 84), (54, 92)],
          SKIN_LIGHT, alpha=0.30, z=3.1)
    # a light draped wrap from the waist, sheer enough to show the glow beneath
    drape = [(43.4, 67.5), (50, 66.2), (56.6, 67.5), (58.6, 56), (61.5, 40), (59, 37.2), (55, 38.8), (50, 36.8),
             (45, 38.8), (41, 37.2), (38.5, 40), (41.4, 56)]
    shape(ax, drape, "#efe6ff", alpha=0.42, z=3.3, edge="#ffffff", lw=0.5)
    for x0, x1 in ((46.5, 44.0), (50.0, 50.0), (53.5, 56.0)):  # soft folds
        ax.add_patch(PathPatch(smooth([(x0, 64.5), ((x0 + x1) / 2 + 0.6, 52), (x1, 39.5)], closed=False), facecolor="none",
                               edgecolor="#ffffff", lw=0.6, alpha=0.45, zorder=3.4))


def draw_arms_and_hands(ax) -> None:
    # the guest's right arm (viewer's left) hangs relaxed, three long fingers open
    ax.add_patch(PathPatch(smooth(limb([(39.5, 93), (35.0, 76), (32.2, 60)], [3.2, 2.3, 1.8])),
                           facecolor=SKIN, edgecolor="none", alpha=0.93, zorder=4))
    ax.add_patch(Ellipse((31.8, 57.4), 4.0, 5.4, angle=8, color=SKIN, alpha=0.95, lw=0, zorder=4))
    for tip, bend in (((28.0, 44.0), (29.2, 50.5)), ((31.2, 42.4), (31.4, 49.5)), ((34.4, 44.8), (33.8, 50.6))):
        ax.add_patch(PathPatch(smooth(limb([(tip[0] * 0.12 + 31.8 * 0.88, 55.5), bend, tip], [0.85, 0.65, 0.45])),
                               facecolor=SKIN, edgecolor="none", alpha=0.95, zorder=4))
        glow_dot(ax, *tip, 0.4, z=4.5)  # luminous fingertips
    # the left arm bends up to show the room key card
    ax.add_patch(PathPatch(smooth(limb([(60.5, 93), (67.5, 80), (72.5, 89.5)], [3.2, 2.3, 1.8])),
                           facecolor=SKIN, edgecolor="none", alpha=0.93, zorder=5))
    ax.add_patch(Ellipse((73.4, 91.6), 4.0, 5.0, angle=-30, color=SKIN, alpha=0.97, lw=0, zorder=5.2))
    # one finger behind the card, its tip showing above it
    ax.add_patch(PathPatch(smooth(limb([(73.6, 93.0), (74.6, 99.0), (75.6, 104.2)], [0.85, 0.65, 0.45])),
                           facecolor=SKIN, edgecolor="none", alpha=0.95, zorder=5.1))
    glow_dot(ax, 75.6, 104.2, 0.4, z=5.15)
    tilt = Affine2D().rotate_deg_around(74.0, 92.0, 14) + ax.transData
    for patch in (
        FancyBboxPatch((73.0, 92.0), 13.5, 8.6, boxstyle="round,pad=0,rounding_size=1.2",
                       facecolor="#fff6e6", edgecolor="#d7b36a", lw=1.1, zorder=6),
        Polygon([(73.0, 97.6), (86.5, 97.6), (86.5, 99.0), (73.0, 99.0)], closed=True, color="#3a2a66", lw=0, zorder=6.1),
        FancyBboxPatch((82.4, 93.0), 2.8, 2.2, boxstyle="round,pad=0,rounding_size=0.4",
                       facecolor="#e8c15a", edgecolor="none", zorder=6.1),
    ):
        patch.set_transform(tilt)
        ax.add_patch(patch)
    ax.text(78.6, 94.2, "101", fontsize=5.5, color="#3a2a66", ha="center", va="center", zorder=6.2,
            family="DejaVu Sans", weight="bold", transform=tilt)
    # two long fingers in front, curled over the card's lower edge
    for tip, bend in (((78.4, 94.6), (76.2, 93.2)), ((77.6, 98.0), (75.8, 96.0))):
        ax.add_patch(PathPatch(smooth(limb([(73.8, 92.2), bend, tip], [1.0, 0.8, 0.55])),
                               facecolor=SKIN, edgecolor="none", alpha=0.97, zorder=6.5))
        glow_dot(ax, *tip, 0.38, z=6.6)


def draw_head(ax) -> None:
    # gill frills: soft lamellae fanning out from both sides of the neck
    for side in (-1, 1):
        for i, (y, reach) in enumerate(((98.8, 8.5), (101.8, 10.5), (104.8, 10.0), (107.6, 7.5))):
            x0 = 50 + side * 2.6
            tip = (x0 + side * reach, y + 3.0 + i * 0.5)
            shape(ax, [(x0, y - 1.0), (x0 + side * reach * 0.55, y - 0.9), tip,
                       (x0 + side * reach * 0.45, y + 2.2), (x0, y + 1.4)],
                  FRILL, alpha=0.50, z=6.8, edge="#ffd0ff", lw=0.6)
    shape(ax, [(47.6, 95), (47.9, 102), (47.5, 109), (50, 110), (52.5, 109), (52.1, 102), (52.4, 95), (50, 94.5)],
          SKIN, alpha=0.95, z=7)
    head = [(50, 106), (45.5, 108), (41.5, 113), (39.6, 120), (38.8, 128), (40, 136), (44, 141.6), (50, 143.6),
            (56, 141.6), (60, 136), (61.2, 128), (60.4, 120), (58.5, 113), (54.5, 108)]
    shape(ax, head, SKIN, alpha=0.97, z=8)
    shape(ax, [(50, 126), (45, 128), (43, 134), (46, 139.5), (50, 141), (54, 139.5), (57, 134), (55, 128)],
          SKIN_LIGHT, alpha=0.28, z=8.1)
    # large dark eyes, tilted almonds, with the lamp's reflection
    for side in (-1, 1):
        cx, cy = 50 + side * 5.4, 121.0
        ax.add_patch(Ellipse((cx, cy), 8.4, 5.2, angle=side * 24, facecolor=EYE, edgecolor="#2e1f6e", lw=1.0, zorder=9))
        ax.add_patch(Ellipse((cx + 1.3, cy + 1.0), 1.7, 1.0, angle=side * 24, color="white", alpha=0.85, lw=0, zorder=9.1))
        ax.add_patch(Ellipse((cx - 1.5, cy - 0.7), 0.9, 0.55, angle=side * 24, color="#c9bbff", alpha=0.6, lw=0, zorder=9.1))
    for side in (-1, 1):  # two breathing slits and a gentle mouth
        ax.plot([50 + side * 0.7, 50 + side * 0.9], [115.6, 114.6], color=SKIN_DEEP, lw=0.9, zorder=9)
    ax.add_patch(PathPatch(smooth([(47.8, 111.2), (50, 110.4), (52.2, 111.2)], closed=False), facecolor="none",
                           edgecolor=SKIN_DEEP, lw=1.1, capstyle="round", zorder=9))


def draw_patterns(ax) -> None:
    """Bioluminescent patterns drifting across the skin: dotted arcs and flowing lines."""
    glow_line(ax, [(42.5, 130.5), (46, 135.5), (50, 137.2), (54, 135.5), (57.5, 130.5)], z=8.5, width=0.7)
    for x, y in ((50, 140.6), (50, 132.4), (47.6, 129.6), (52.4, 129.6)):
        glow_dot(ax, x, y, 0.45, z=8.5)
    for side in (-1, 1):
        for k, y in enumerate((128.5, 132.0, 135.5)):
            glow_dot(ax, 50 + side * (6.6 + k * 1.4), y, 0.42, z=8.5)
        glow_line(ax, [(50 + side * 2.5, 91), (50 + side * 6.5, 87), (50 + side * 9.5, 81), (50 + side * 11.5, 74)],
                  z=5.5, width=0.8)
        glow_line(ax, [(50 + side * 1.6, 85), (50 + side * 3.2, 77), (50 + side * 2.6, 69)], z=5.5, width=0.6)
        for k, y in enumerate((50, 43, 36, 29, 22)):
            glow_dot(ax, 50 + side * (4.0 + k * 0.35), y, 0.42, z=5.5)
    for x, y in ((48.2, 88.5), (51.8, 82), (47, 78.5), (53.2, 74), (50, 70.5), (50, 59)):
        glow_dot(ax, x, y, 0.5, z=5.5)
    glow_line(ax, [(37.0, 87), (35.2, 79), (33.6, 70)], z=5.5, width=0.55)
    glow_line(ax, [(63.5, 88), (66.4, 82), (68.6, 80.5)], z=5.5, width=0.55)


def draw(out_dir: Path, stem: str = "alien", dpi: int = 200) -> tuple[Path, Path]:
    """Write `<stem>.svg` (vector) and `<stem>.png` (rendered) into out_dir; returns both paths."""
    with plt.rc_context({"svg.hashsalt": "alienstay"}):  # stable element ids: a redraw gives the same file
        return _draw(out_dir, stem, dpi)


def _draw(out_dir: Path, stem: str, dpi: int) -> tuple[Path, Path]:
    fig = plt.figure(figsize=(4.0, 6.0))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, WIDTH)
    ax.set_ylim(0, HEIGHT)
    ax.set_aspect("equal")
    ax.axis("off")
    draw_lobby(ax)
    draw_body(ax)
    draw_arms_and_hands(ax)
    draw_head(ax)
    draw_patterns(ax)
    out_dir.mkdir(parents=True, exist_ok=True)
    svg, png = out_dir / f"{stem}.svg", out_dir / f"{stem}.png"
    fig.savefig(svg, format="svg", metadata={"Date": None})
    fig.savefig(png, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return svg, png
