"""Cluster the photos by what the alien sees in them, and compare with the real classes.

One module a concern:

- ``features``: tag vectors (per-facet probabilities) or embeddings; the known classes
  (hotel, chain, the top tag of the place facet); the ``FEATURE_KINDS`` registry.
- ``methods``: k-means with the silhouette's k, agglomerative, HDBSCAN, the 2-D map; the
  ``CLUSTER_METHODS`` registry (``register_method``).
- ``comparison``: ARI / NMI / within-vs-between similarity against each class, cluster
  names, the whole run on arrays (``run_clustering``) and the clusters table.
- ``figures``: the map with typical photos, contingency heat maps, the silhouette curve.
- ``note``: ``report/clusters.md``, the answer in this run's numbers.

The stage itself is ``alienstay.stages.cluster``.

The names below are re-exported so ``from alienstay import clustering`` keeps working.
"""

from alienstay.clustering.comparison import (
    SIMILARITY_SAMPLE,
    ClusteringResult,
    cluster_names,
    clusters_table,
    compare_with_classes,
    run_clustering,
    similarity_within_between,
    spread_of_classes,
)
from alienstay.clustering.features import (
    CLASS_KINDS,
    FEATURE_KINDS,
    FEATURES,
    PLACE_FACET,
    ClusteringError,
    FeatureKind,
    check_clusterable,
    known_classes,
    load_features,
    place_pseudo_classes,
    planted_tag_vectors,
    tag_feature_matrix,
)
from alienstay.clustering.methods import (
    CLUSTER_METHODS,
    KMEANS_INITS,
    KMEANS_SCAN_SAMPLE,
    NOISE,
    PAIRWISE_LIMIT,
    PRIMARY_METHOD,
    SILHOUETTE_SAMPLE,
    ClusterMethod,
    agglomerative_labels,
    check_k,
    choose_k_by_silhouette,
    cluster_count,
    hdbscan_labels,
    hdbscan_min_cluster_size,
    kmeans_labels,
    map_2d,
    register_method,
    silhouette,
)

__all__ = [name for name in dir() if not name.startswith("_")]
