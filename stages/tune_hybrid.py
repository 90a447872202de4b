"""Stage `tune_hybrid`: choose the weighted hybrid's dense weight and score normalisation on the dev split.

Ranks the dev queries with the fine-tuned model (its stored corpus embeddings) and with BM25 over the depth
`evaluate` retrieves, scores every weight of the grid with each normalisation, and writes the best to
``models/hybrid.json`` next to the model: what `evaluate` scores on test and what a search service reads.
Without judged dev queries it writes the default weight and says so. ``--round N`` tunes round N's model.
"""

from __future__ import annotations

from embedft.config import load_machine, load_params
from embedft.core import artifacts, read_corpus, read_split, run_stage, write_json_atomic
from embedft.core.artifacts import CORPUS_FILE, SPLIT_DIR
from embedft.encoding import encode, load_embeddings, load_model_with
from embedft.evaluation import retrieval_depth, tune_hybrid
from embedft.retrieval import bm25_run, rank_corpus


def main(argv: list[str] | None = None) -> None:
    paths = artifacts.parse_round(argv)
    params, machine = load_params(), load_machine()
    base, settings = params.base, params.evaluate
    corpus = read_corpus(CORPUS_FILE)
    queries, qrels = read_split(SPLIT_DIR / "dev")
    depth = retrieval_depth(settings, len(corpus))
    query_ids = sorted(q for q in queries if q in qrels)
    dense, lexical = {}, {}
    if query_ids:
        model = load_model_with(base, machine, str(paths.model), key=None)
        vectors = encode(model, [queries[q] for q in query_ids], base.query_prompt, machine.encode_batch_size, progress=False)
        dense = rank_corpus(query_ids, vectors, load_embeddings(paths.model_embeddings, corpus, memory_map=True), depth,
                            machine.search_chunk_size)
        lexical = bm25_run(list(corpus), [d.full_text for d in corpus.values()], query_ids, [queries[q] for q in query_ids], depth,
                           params.bm25)
    choice = {"dense_model": str(paths.model), "query_prompt": base.query_prompt,
              **tune_hybrid({q: qrels[q] for q in query_ids}, dense, lexical, settings, depth, params.bm25)}
    write_json_atomic(paths.hybrid_choice, choice)
    if choice["chosen_on"] == "dev":
        alone = choice["candidates"]
        first = next(iter(alone.values()))
        print(f"tune_hybrid: {choice['dev_queries']} dev queries; dense weight {choice['weight']:g} with "
              f"{choice['normalisation']} normalisation: {settings.headline} {choice['dev_score']:.4f} on dev "
              f"(BM25 alone {first['0']:.4f}, fine-tuned alone {first['1']:.4f}; "
              + ", ".join(f"best {name} {max(scores.values()):.4f}" for name, scores in alone.items()) + f") -> {paths.hybrid_choice}")
    else:
        print(f"tune_hybrid: no judged dev queries, so nothing to choose on: the hybrid uses the default dense weight "
              f"{choice['weight']:g} (evaluate.hybrid_default_weight) with "
              f"{choice['normalisation']} normalisation -> {paths.hybrid_choice}")


if __name__ == "__main__":
    run_stage(main)
