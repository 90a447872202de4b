"""Stage `embed_corpus`: the base model's corpus embeddings, computed once and reused.

`synthesize` (round-trip filter), `mine_negatives`, `evaluate` and `truncate_eval` all read
``data/embeddings/base`` instead of encoding the corpus again. Only the params that change the vectors
(model, document prompt, sequence length, stored dtype) are this stage's DVC params. Documents longer than the
model's window are counted and reported (``reports/embed.json``), never truncated silently. The corpus is encoded
in shards (machine settings encode_shard_size, encode_backend): memory stays flat, and a killed run resumes at the
first missing shard (.checkpoints/embeddings).
"""

from __future__ import annotations

from embedft.config import load_machine, load_params
from embedft.core import read_corpus, run_stage, write_json_atomic
from embedft.core.artifacts import BASE_EMBEDDINGS_DIR, CORPUS_FILE, EMBED_REPORT
from embedft.encoding import count_over_window, load_model_with, store_corpus_embeddings, truncation_warning


def main() -> None:
    params, machine = load_params(), load_machine()
    base = params.base
    corpus = read_corpus(CORPUS_FILE)
    model = load_model_with(base, machine)
    texts, doc_ids = [doc.full_text for doc in corpus.values()], list(corpus)
    del corpus  # only the texts are needed from here on
    truncated = count_over_window(model, texts, base.document_prompt)
    if warning := truncation_warning("documents", truncated, len(texts), model.max_seq_length, "base.max_seq_length"):
        print(f"embed_corpus: warning: {warning}")
    stored = store_corpus_embeddings(BASE_EMBEDDINGS_DIR, model, base.model, doc_ids, texts, base, machine, params.export)
    write_json_atomic(EMBED_REPORT, {"documents": len(texts), "dimension": int(stored.vectors.shape[1]),
                                      "max_seq_length": model.max_seq_length, "truncated_documents": truncated})
    print(f"embed_corpus: {stored.vectors.shape[0]} documents x {stored.vectors.shape[1]} dims -> {BASE_EMBEDDINGS_DIR}")


if __name__ == "__main__":
    run_stage(main)
