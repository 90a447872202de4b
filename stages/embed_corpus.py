"""Stage `embed_corpus`: the base model's corpus embeddings, computed once and reused.

`synthesize` (round-trip filter), `mine_negatives`, `evaluate` and `truncate_eval` all read
``data/embeddings/base`` instead of encoding the corpus again. Only the params that change the vectors
(model, document prompt, sequence length) are this stage's DVC params. Documents longer than the model's
window are counted and reported (``metrics/embed.json``), never truncated silently.
"""

from __future__ import annotations

from stages.atomic import write_json_atomic
from stages.data_io import read_corpus
from stages.errors import run_stage
from stages.models import load_model_with
from stages.params import load_params
from stages.paths import BASE_EMBEDDINGS_DIR, CORPUS_FILE, METRICS_DIR
from stages.retrieval import corpus_embeddings, save_embeddings
from stages.truncation import count_over_window, truncation_warning


def main() -> None:
    params = load_params()
    base = params.base
    corpus = read_corpus(CORPUS_FILE)
    model = load_model_with(base)
    texts = [doc.full_text for doc in corpus.values()]
    truncated = count_over_window(model, texts, base.document_prompt)
    warning = truncation_warning("documents", truncated, len(texts), model.max_seq_length, "base.max_seq_length")
    if warning:
        print(f"embed_corpus: {warning}")
    stored = corpus_embeddings(model, base.model, corpus, base)
    save_embeddings(BASE_EMBEDDINGS_DIR, stored)
    write_json_atomic(METRICS_DIR / "embed.json", {"documents": len(texts), "dimension": int(stored.vectors.shape[1]),
                                                  "max_seq_length": model.max_seq_length, "truncated_documents": truncated})
    print(f"embed_corpus: {stored.vectors.shape[0]} documents x {stored.vectors.shape[1]} dims -> {BASE_EMBEDDINGS_DIR}")


if __name__ == "__main__":
    run_stage(main)
