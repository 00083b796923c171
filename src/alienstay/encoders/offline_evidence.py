"""What the offline ConSE tagger can see, and the floors measured for it on labelled photos.

ConSE embeds a photo as a mixture of ImageNet class names, so it has evidence only for what
those 1000 object classes can show. Two kinds of facet stay silent by declaration:
- absences ("no water", "no view", "nothing arranged"): a classifier sees what is present, never
  what is missing (`sees_absences=False`);
- `count`, `space`, `shape` (UNSEEN_FACETS): no object class counts guests or measures a room;
  on the labelled photos ConSE gives one word to nearly every photo (`spacious`, `angular`), so
  it does not separate them (the benchmark prints each facet's top-word share).
The other facets were measured (`python -m benchmarks offline_quality`, on the labelled photos
of data/sample_labels.yaml): each keeps the lowest floor at which its selected tags reach 95 %
precision (at that floor and every higher one, with at least 3 labelled selections). `view`,
`water`, `style` and `welcome` reach it at no floor (e.g. "sea" wins `water` on the rocket and
the astronaut, "rustic" wins `style` on the white villas), so they stay silent too.
The floors were chosen and measured on the same 13 photos: docs/tagging.md says so beside the figure.
On 125 other labelled photos they were right on 0.47 of their tags, so `load_offline_encoder`
now selects by the packaged calibration profile (data/offline_calibration.yaml, calibration.py)
and these floors are only its starting point (`alienstay evaluate --uncalibrated` measures them).
"""

from __future__ import annotations

from alienstay.vocabulary.evidence import Evidence, FacetRule

UNSEEN_FACETS = frozenset({"count", "space", "shape"})

# ConSE's top-T and the softmax scale, chosen with the floors (the benchmark searches T in
# 1, 3, 5, 10, 20 and the scale in 15, 30, 50 for the most correct selections at 95 %).
CONSE_TOP_T = 10
CONSE_LOGIT_SCALE = 50.0

CONSE_EVIDENCE = Evidence(
    facets=frozenset({"place", "objects", "light", "comfort"}),
    sees_absences=False,
    rules={
        "place": FacetRule(top_k=1, min_prob=0.75),
        "objects": FacetRule(top_k=5, min_prob=0.55),
        "light": FacetRule(top_k=1, min_prob=0.85),
        "comfort": FacetRule(top_k=1, min_prob=0.85),
    },
    source="floors measured on 13 labelled photos with EfficientNet-Lite1 (python -m benchmarks offline_quality)",
)
