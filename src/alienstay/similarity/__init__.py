"""Search by meaning over the tag stage's image embeddings.

- `vectors`: the stored fp16 embedding matrix, memory-mapped, and exact cosine top-k over it;
- `index`: the approximate index (FAISS IVF, scalar-quantised, re-ranked exactly) above a size
  threshold, built by `alienstay index` and used only while it matches the embeddings;
- `query`: the tag stage's own model, loaded again to embed a free-text phrase;
- `duplicates`: which photos are the same photo (sha256, perceptual hash, `duplicate_of`);
- `service`: what the gallery asks: text search (optionally within a word search) and similar photos;
- `retrieval_images`: can an embedding find other photos of the same hotel? Image-level top-K, as
  Hotels-50K's own evaluator counts; `retrieval_protocol`: who queries whom, and the evaluator's file;
  `retrieval`: distinct-hotel top-K, an extra table (not the paper's metric).
"""
