"""The tag stage: photos -> image embeddings -> scores against the vocabulary -> tags.

Split like clip-retrieval's inference so the same parts run locally or on Ray:

- **reader** (:mod:`.reader`): catalog rows -> batches of pixel tensors (a torch DataLoader
  whose worker processes decode the prepared JPEGs while the model runs), skipping photos
  already tagged;
- **mapper** (:mod:`.scoring`, :class:`TagMapper`): (ids, pixels) -> embeddings, cosine
  scores, per-facet probabilities and the selected tags;
- **writer** (:mod:`.shards`, :mod:`.consolidation`): each group of batches becomes one tag
  shard and one embeddings shard, written atomically; at the end the shards of the current
  settings are consolidated into ``tags.parquet`` and ``embeddings/``;
- **engines**: :mod:`.local` (this process) and :mod:`.ray_engine` (Ray Data), one entry each
  of :data:`.engines.ENGINES`; the stage itself is ``alienstay.stages.tag``.

Resume: shards live in a folder keyed by (model, revision, dtype, vocabulary hash). A rerun
after a kill reads the shards already there, tags only the missing photos and consolidates
everything: the result equals an uninterrupted run.
"""

from alienstay.tagging.consolidation import (
    consolidate,
    consolidation_plan,
    read_embeddings,
    write_embedding_matrix,
)
from alienstay.tagging.engines import ENGINES
from alienstay.tagging.local import run_tagging
from alienstay.tagging.reader import (
    DecodeFailure,
    ImageBatch,
    PreparedImages,
    collate_images,
    image_batches,
    pending_images,
)
from alienstay.tagging.scoring import (
    PROBABILITY_RULES,
    TAG_SCHEMA,
    TaggedBatch,
    TagMapper,
    cached_word_embeddings,
    encoder_probabilities,
    facet_probabilities,
    select_tags,
    sigmoid_probabilities,
    tag_rows,
    word_embeddings,
)
from alienstay.tagging.settings import TagIdentity, TagSettings, TagSummary
from alienstay.tagging.shards import (
    FAILURE_COLUMNS,
    ShardWriter,
    shard_dirs,
    shard_name,
    tag_shards,
    tagged_ids,
    write_failure_shard,
    write_shard,
)

__all__ = [
    "DecodeFailure", "ENGINES", "FAILURE_COLUMNS", "ImageBatch", "PreparedImages", "ShardWriter", "TAG_SCHEMA",
    "TagIdentity", "TagMapper", "TagSettings", "TagSummary", "TaggedBatch", "cached_word_embeddings",
    "collate_images", "consolidate", "consolidation_plan", "facet_probabilities", "image_batches",
    "encoder_probabilities", "sigmoid_probabilities", "PROBABILITY_RULES",
    "pending_images", "read_embeddings", "run_tagging", "select_tags", "shard_dirs", "shard_name",
    "tag_rows", "tag_shards", "tagged_ids", "word_embeddings", "write_embedding_matrix", "write_failure_shard",
    "write_shard",
]
