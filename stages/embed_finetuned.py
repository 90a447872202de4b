"""Stage `embed_finetuned`: the fine-tuned model's corpus embeddings, computed once and reused.

`evaluate` and `truncate_eval` search them, and round 2 of mining (`mine_negatives --round 2`) mines with them,
so none of those stages encodes the corpus again and round 2 does not wait for evaluation. Encoding is sharded and
resumable as in `embed_corpus`. ``--round N``
embeds round N's model (``models/roundN`` into ``data/embeddings/roundN``); round 1 is ``models/finetuned``.
"""

from __future__ import annotations

from embedft.config import load_machine, load_params
from embedft.core import artifacts, read_corpus, run_stage
from embedft.core.artifacts import CORPUS_FILE
from embedft.encoding import load_model_with, store_corpus_embeddings


def main(argv: list[str] | None = None) -> None:
    paths = artifacts.parse_round(argv)
    params, machine = load_params(), load_machine()
    corpus = read_corpus(CORPUS_FILE)
    # The model's window is base.max_seq_length, as for the base model's embeddings, so the two compare alike.
    model = load_model_with(params.base, machine, str(paths.model), key=None)
    stored = store_corpus_embeddings(paths.model_embeddings, model, str(paths.model), list(corpus),
                                     [doc.full_text for doc in corpus.values()], params.base, machine, params.export)
    print(f"embed_finetuned: {stored.vectors.shape[0]} documents x {stored.vectors.shape[1]} dims -> {paths.model_embeddings}")


if __name__ == "__main__":
    run_stage(main)
