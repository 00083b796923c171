"""The series figure: rows photos, columns values (the original first), each cell's verdict."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image

from alienstay.editing.base import fit_size
from alienstay.editing.faithfulness import FAITHFUL, NOT_APPLIED, TOO_STRONG
from alienstay.editing.recipes import Recipe
from alienstay.workspace.layout import atomic_path

VERDICT_COLOURS = {FAITHFUL: "#1a7f37", TOO_STRONG: "#cf222e", NOT_APPLIED: "#6e7781"}


def draw_grid(rows: pd.DataFrame, recipe: Recipe, photos: pd.DataFrame, target: Path) -> Path:
    """Rows photos, columns values (original first); each cell titled with its verdict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = recipe.value_names
    n_rows, n_cols = len(photos), len(values) + 1
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(2.6 * n_cols, 2.2 * n_rows + 0.9), squeeze=False)
    for r, photo in enumerate(photos.itertuples()):
        cells = rows[rows["image_id"] == photo.image_id].set_index("value")
        size = int(cells["size"].iloc[0]) if len(cells) else 512
        axes[r][0].imshow(fit_size(Image.open(photo.prepared_path), size))
        axes[r][0].set_title("original", fontsize=8)
        axes[r][0].set_ylabel(_short(photo.image_id), fontsize=7)
        for c, value in enumerate(values, start=1):
            axis = axes[r][c]
            if value in cells.index:
                cell = cells.loc[value]
                axis.imshow(Image.open(cell["output_path"]))
                axis.set_title(f"{value}: {cell['verdict']}\nstruct {cell['structure_ssim']:.2f} edge {cell['edge_ssim']:.2f}",
                               fontsize=7, color=VERDICT_COLOURS.get(cell["verdict"], "black"))
                for spine in axis.spines.values():
                    spine.set_edgecolor(VERDICT_COLOURS.get(cell["verdict"], "black"))
                    spine.set_linewidth(3)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    first = rows.iloc[0]
    kind = "diffusion" if bool(first["is_diffusion"]) else "CLASSICAL GRADE - NOT DIFFUSION"
    figure.suptitle(
        f"{recipe.name} ({recipe.parameter}, persona {'/'.join(recipe.persona)}): {first['method']} [{kind}]\n"
        f"model {first['model_id']} | seed {first['seed']} | steps {first['steps']} | size {first['size']}",
        fontsize=9,
    )
    figure.tight_layout()
    with atomic_path(target) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)
    return target


def _short(image_id: str, width: int = 22) -> str:
    return image_id if len(image_id) <= width else "..." + image_id[-(width - 3):]
