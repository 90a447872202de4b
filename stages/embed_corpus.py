"""Stage `embed_corpus`: the base model's corpus embeddings, computed once and reused.

`synthesize` (round-trip filter), `mine_negatives`, `evaluate` and `truncate_eval` all read
``data/embeddings/base`` instead of encoding the corpus again. Only the params that change the vectors
(model, document prompt, sequence length) are this stage's DVC params.
"""

from __future__ import annotations

from stages.data_io import read_corpus
from stages.errors import run_stage
from stages.models import load_model_with
from stages.params import load_params
from stages.paths import BASE_EMBEDDINGS_DIR, CORPUS_FILE
from stages.retrieval import corpus_embeddings, save_embeddings


def main() -> None:
    params = load_params()
    base = params.base
    corpus = read_corpus(CORPUS_FILE)
    model = load_model_with(base)
    stored = corpus_embeddings(model, base.model, corpus, base)
    save_embeddings(BASE_EMBEDDINGS_DIR, stored)
    print(f"embed_corpus: {stored.vectors.shape[0]} documents x {stored.vectors.shape[1]} dims -> {BASE_EMBEDDINGS_DIR}")


if __name__ == "__main__":
    run_stage(main)
