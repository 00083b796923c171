"""`alienstay evaluate` and `alienstay calibrate`: a tagger measured and calibrated on labelled photos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from alienstay.cli.common import WorkspaceOption, console, fail, open_workspace
from alienstay.workspace.layout import DEFAULT_WORKSPACE

LabelsOption = Annotated[Path, typer.Option("--labels", help="Labels file (CSV/TSV: a `file` column, `scene`, yes/no columns; docs/tagging.md).")]
MappingOption = Annotated[
    Optional[Path], typer.Option("--mapping", help="Your column -> word mapping YAML, added to the packaged label_columns.yaml.")
]
ModelOption = Annotated[str, typer.Option("--model", help="offline | a hub id | a local folder (as `tag --model`).")]
VocabOption = Annotated[Optional[Path], typer.Option("--vocabulary", help="Your own vocabulary YAML.")]


def _load(model: str, vocabulary: Path | None, labels: Path, mapping: Path | None, device: str):
    from alienstay.encoders import load_encoder
    from alienstay.labelled.table import LabelsFileError, load_label_table
    from alienstay.runtime.models import ModelUnavailable
    from alienstay.vocabulary.words import VocabularyError, load_vocabulary

    try:
        vocab = load_vocabulary(vocabulary)
        table = load_label_table(labels, vocab, mapping)
        encoder = load_encoder(model, device=device, dtype="float32")
    except (LabelsFileError, VocabularyError, ModelUnavailable, ValueError) as error:
        fail(str(error))
    return vocab, table, encoder


def evaluate(
    labels: LabelsOption,
    model: ModelOption = "offline",
    calibration: Annotated[
        Optional[Path], typer.Option("--calibration", help="Select by this profile (default: the tagger's own, packaged one).")
    ] = None,
    uncalibrated: Annotated[
        bool, typer.Option("--uncalibrated", help="Offline tagger: its ConSE floors before any profile (the 'before').")
    ] = False,
    mapping: MappingOption = None,
    vocabulary: VocabOption = None,
    device: Annotated[str, typer.Option("--device")] = "cpu",
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Precision, recall and coverage per word and facet on labelled photos: report/evaluation.md."""
    from alienstay.vocabulary.profile import CalibrationError, apply_profile, load_profile
    from alienstay.stages.labelled import run_evaluate
    from alienstay.vocabulary.evidence import evidence_of

    vocab, table, encoder = _load(model, vocabulary, labels, mapping, device)
    if uncalibrated and hasattr(encoder, "base_evidence"):
        encoder.use_calibration(encoder.base_evidence)
    how = evidence_of(encoder).source
    if calibration is not None:
        try:
            profile = load_profile(calibration)
            apply_profile(encoder, profile, vocab, str(calibration))
        except CalibrationError as error:
            fail(str(error))
        how = f"the profile {calibration.name} ({len(profile.floors)} words)"
    if f"({labels.name})" in how:
        how += (" - IN SAMPLE: the profile was fitted on these very photos, so these figures flatter it; "
                "its cross-validated figures are in the profile's `cross_validated` section")
    result = run_evaluate(encoder, table, vocab, open_workspace(workspace, create=True).root / "report", how)  # its photos come from the labels file
    summary = Table(title=f"{encoder.model_id} on {len(table.files)} labelled photos (full note: {result.note})")
    for column in ("facet", "photos judged", "selected", "precision [95 %]", "coverage"):
        summary.add_column(column)
    for row in result.facets.itertuples():
        precision = "n/a" if row.selected == 0 else f"{row.precision:.2f} [{row.precision_low:.2f}, {row.precision_high:.2f}]"
        summary.add_row(row.facet, str(row.judged_photos), str(row.selected), precision, f"{row.coverage:.2f}")
    console.print(summary)


def calibrate(
    labels: LabelsOption,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the calibration profile (YAML).")],
    model: ModelOption = "offline",
    evidence: Annotated[
        str, typer.Option("--evidence", help="probabilities (any encoder) | class-head (offline: a head over class scores).")
    ] = "auto",
    target: Annotated[float, typer.Option("--target", min=0.5, max=1.0, help="Precision the selections must reach on the training photos (each word's, or pooled with --selection surest).")] = 0.9,
    folds: Annotated[int, typer.Option("--folds", min=2, help="k of the k-fold cross-validation.")] = 5,
    selection: Annotated[
        str, typer.Option("--selection", help="per-word (a floor a word) | surest (one tag a photo above one floor) | "
                                              "auto (the evidence source's own: surest for class-head).")
    ] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Shuffles the folds; the figures move with it (bench_calibration).")] = 0,
    mapping: MappingOption = None,
    vocabulary: VocabOption = None,
    device: Annotated[str, typer.Option("--device")] = "cpu",
) -> None:
    """Fit floors (a word each, or one shared: --selection) by k-fold cross-validation; write a profile for `tag --calibration`."""
    from alienstay.labelled.calibration import EVIDENCE_SOURCES, SELECTIONS
    from alienstay.stages.labelled import run_calibrate

    if evidence != "auto" and evidence not in EVIDENCE_SOURCES:  # said before any model loads
        fail(f"--evidence {evidence!r}: use auto, {', '.join(EVIDENCE_SOURCES)}.")
    if selection != "auto" and selection not in SELECTIONS:
        fail(f"--selection {selection!r}: use auto, {', '.join(SELECTIONS.names())}.")
    vocab, table, encoder = _load(model, vocabulary, labels, mapping, device)
    # auto: the last registered source this encoder can feed (a head where class scores exist)
    feeds = [name for name, entry in EVIDENCE_SOURCES.items() if not entry.needs_features or hasattr(encoder, "encode_with_features")]
    source = evidence if evidence != "auto" else feeds[-1]
    selection = selection if selection != "auto" else EVIDENCE_SOURCES[source].selection
    try:
        profile = run_calibrate(encoder, table, vocab, source=source, target=target, folds=folds, selection=selection,
                                seed=seed, progress=lambda step: console.print(f"calibrate: {step}"))
    except ValueError as error:
        fail(str(error))
    path = profile.save(output)
    overall = next(row for row in profile.cv_facets if row["facet"] == "all")
    console.print(
        f"{len(profile.floors)} words kept, {len(profile.silenced)} silenced ({selection}); cross-validated ({folds}-fold, "
        f"{profile.photos} photos): precision {overall['precision']} ({overall['correct']}/{overall['selected']}), "
        f"coverage {overall['coverage']} ({overall['covered_photos']}/{overall['judged_photos']} photos) -> {path}"
    )
    if profile.max_tags is not None:
        return  # nothing silenced after the outer folds: the figures above are the whole procedure's
    kept = next(row for row in profile.cv_kept if row["facet"] == "all")
    console.print(f"the same selections, kept words only (chosen after seeing them: optimistic): precision "
                  f"{kept['precision']} ({kept['correct']}/{kept['selected']}), coverage {kept['coverage']} "
                  f"({kept['covered_photos']}/{kept['judged_photos']} photos)")


def register(app: typer.Typer) -> None:
    """Add the two commands to the `alienstay` app."""
    app.command()(evaluate)
    app.command()(calibrate)
