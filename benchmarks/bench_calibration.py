"""How much the offline tagger's cross-validated figures move with the fold split and the head's C.

Runs the whole `alienstay calibrate` procedure (head refitted in every fold, floors on inner
out-of-fold predictions) on the labelled calibration photos for a few fold seeds and two values
of the head's regularisation C, and prints precision and coverage for each. docs/tagging.md's
"Tags you can trust" section quotes these lines; nothing here is written to the packaged profile.

    python -m benchmarks.bench_calibration [--labels ../shared/samples/calibration/labels.tsv]
    (about 5 minutes on 2 CPU cores; figures also written to runs/bench/calibration.json)
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import alienstay.labelled.calibration as calibration
from alienstay.vocabulary.word_head import HEAD_C, fit_head
from alienstay.vocabulary.evidence import evidence_of
from benchmarks.common import save

DEFAULT_LABELS = Path(__file__).resolve().parents[1].parent / "shared/samples/calibration/labels.tsv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--c", type=float, nargs="+", default=[HEAD_C, 0.003])
    args = parser.parse_args()
    if not args.labels.is_file():
        raise SystemExit(f"{args.labels}: no labels file; pass --labels PATH/labels.tsv (see docs/tagging.md, issue 20).")

    from alienstay.cli.labels import _load
    from alienstay.stages.labelled import run_encoder

    vocab, table, encoder = _load("offline", None, args.labels, None, "cpu")
    encoder.use_calibration(encoder.base_evidence)  # fit from what the encoder sees, not the packaged profile
    outputs = run_encoder(encoder, table, vocab)
    figures: dict[str, dict] = {}
    for c in args.c:
        # C is a module constant of the head; the benchmark swaps the fit function calibrate() calls
        calibration.fit_head = functools.partial(fit_head, c=c)
        for seed in args.seeds:
            profile = calibration.calibrate(
                outputs.base_probs, table, vocab, evidence_of(encoder), model_id=encoder.model_id,
                revision=encoder.revision, source="class-head", features=outputs.features, seed=seed)
            total = next(f for f in profile.cv_facets if f["facet"] == "all")
            print(f"C={c:g} seed={seed}: precision {total['correct']}/{total['selected']} = {total['precision']:.3f}, "
                  f"coverage {total['covered_photos']}/{profile.photos} = {total['coverage']:.3f}, "
                  f"kept {', '.join(profile.floors)}", flush=True)
            figures[f"C={c:g} seed={seed}"] = {"correct": total["correct"], "selected": total["selected"],
                                               "covered_photos": total["covered_photos"], "kept": list(profile.floors)}
    save("calibration", figures)


if __name__ == "__main__":
    main()
