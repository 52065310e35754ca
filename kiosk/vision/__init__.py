"""Face pipeline: frame sources, detection, quality, embedding, gallery search.

Nothing here imports Qt or the database."""
