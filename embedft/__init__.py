"""The library behind the DVC stages in ``stages/``: fine-tune a sentence-transformers embedding model on a
domain corpus and prove the gain. One subpackage per concept, in pipeline order (docs/architecture.md):
core, config, corpus, encoding, retrieval, pairs, mining, training, evaluation, export, reporting."""
