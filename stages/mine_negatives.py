"""Stage `mine_negatives`: add hard negatives to each training pair, retrieved by the base model.

Candidates come from the rank window [range_min, range_max) of a dense search over the corpus. Every
document labelled relevant to the pair's anchor (across all pairs that share it) is excluded, and so is any
document whose text equals the positive. Pairs short of candidates are topped up with random documents.
The base model's corpus embeddings come from `embed_corpus`; only the anchors are encoded here.
"""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np

from stages.atomic import atomic_path, write_json_atomic, write_jsonl
from stages.data_io import Document, read_corpus, read_records
from stages.errors import PipelineError, run_stage
from stages.models import load_model
from stages.params import MineNegativesParams, load_params
from stages.paths import BASE_EMBEDDINGS_DIR, CORPUS_FILE, METRICS_DIR, NEGATIVES_DIR, PAIRS_DIR
from stages.retrieval import encode, exact_search, load_embeddings


def positives_by_anchor(pairs: list[dict]) -> dict[str, set[str]]:
    """Every positive document id of each anchor, pooled over all pairs sharing that anchor."""
    pooled: dict[str, set[str]] = defaultdict(set)
    for pair in pairs:
        pooled[pair["anchor"]].add(pair["positive_id"])
    return pooled


def choose_negatives(
    candidates: list[int],
    excluded: set[int],
    settings: MineNegativesParams,
    corpus_size: int,
    rng: random.Random,
) -> tuple[list[int], int]:
    """Pick ``num_negatives`` corpus rows for one pair.

    Args:
        candidates: corpus rows ranked best first (the whole search result, ranks 0..range_max-1).
        excluded: rows that must never be a negative (labelled positives, copies of the positive).
        settings: the rank window, count and sampling mode.
        corpus_size: number of corpus rows, for random top-up.
        rng: seeded generator for sampling and top-up.

    Returns:
        the chosen rows and how many of them are random top-ups.
    """
    window = [row for row in candidates[settings.range_min : settings.range_max] if row not in excluded]
    if settings.sampling == "random":
        window = rng.sample(window, len(window))
    chosen = window[: settings.num_negatives]
    topped_up = 0
    available = corpus_size - len(excluded | set(chosen))
    while len(chosen) < settings.num_negatives and available > 0:
        row = rng.randrange(corpus_size)
        if row not in excluded and row not in chosen:
            chosen.append(row)
            topped_up += 1
            available -= 1
    return chosen, topped_up


def mine_hard_negatives(
    pairs: list[dict],
    corpus: dict[str, Document],
    corpus_vectors: np.ndarray,
    anchor_vectors: dict[str, np.ndarray],
    settings: MineNegativesParams,
    seed: int,
    chunk_size: int,
) -> tuple[list[dict], dict]:
    """Rows of (anchor, positive, negative_1..n) plus a report of where negatives came from and their scores."""
    doc_ids = list(corpus)
    row_of = {doc_id: row for row, doc_id in enumerate(doc_ids)}
    text_rows: dict[str, list[int]] = defaultdict(list)
    for row, doc_id in enumerate(doc_ids):
        text_rows[corpus[doc_id].full_text.strip()].append(row)
    anchors = sorted(anchor_vectors)
    indices, _ = exact_search(np.stack([anchor_vectors[a] for a in anchors]), corpus_vectors, settings.range_max, chunk_size)
    ranked = dict(zip(anchors, indices.tolist()))
    positives = positives_by_anchor(pairs)
    positive_texts: dict[str, set[str]] = defaultdict(set)
    for pair in pairs:
        positive_texts[pair["anchor"]].add(pair["positive"].strip())
    rng = random.Random(seed)
    rows, from_window, topped_up, negative_scores, positive_scores = [], 0, 0, [], []
    for pair in pairs:
        # Exclude every labelled positive of the anchor, and any document that repeats one of their texts.
        excluded = {row_of[d] for d in positives[pair["anchor"]] if d in row_of}
        for doc_id in positives[pair["anchor"]]:
            if doc_id in row_of:
                excluded |= set(text_rows[corpus[doc_id].full_text.strip()])
        for text in positive_texts[pair["anchor"]]:
            excluded |= set(text_rows.get(text, []))
        chosen, filled = choose_negatives(ranked[pair["anchor"]], excluded, settings, len(doc_ids), rng)
        if len(chosen) < settings.num_negatives:
            raise PipelineError(
                f"params.yaml: mine_negatives.num_negatives is {settings.num_negatives}, but the corpus has only "
                f"{len(chosen)} documents that are not positives of the anchor {pair['anchor'][:60]!r}; lower it"
            )
        topped_up += filled
        from_window += len(chosen) - filled
        anchor_vector = anchor_vectors[pair["anchor"]]
        negative_scores += [float(corpus_vectors[row] @ anchor_vector) for row in chosen]
        if pair["positive_id"] in row_of:
            positive_scores.append(float(corpus_vectors[row_of[pair["positive_id"]]] @ anchor_vector))
        row = {"anchor": pair["anchor"], "positive": pair["positive"], "source": pair["source"]}
        row.update({f"negative_{i + 1}": corpus[doc_ids[r]].full_text for i, r in enumerate(chosen)})
        rows.append(row)
    report = {
        "pairs": len(rows),
        "negatives_per_pair": settings.num_negatives,
        "negatives_from_window": from_window,
        "negatives_random_topup": topped_up,
        "mean_negative_score": round(float(np.mean(negative_scores)), 6) if negative_scores else 0.0,
        "mean_positive_document_score": round(float(np.mean(positive_scores)), 6) if positive_scores else 0.0,
    }
    return rows, report


def main() -> None:
    params = load_params()
    base, settings = params.base, params.mine_negatives
    corpus = read_corpus(CORPUS_FILE)
    pairs = read_records(PAIRS_DIR / "pairs.jsonl")
    model = load_model(base.model, base.device, base.max_seq_length)
    stored = load_embeddings(BASE_EMBEDDINGS_DIR, corpus)
    if settings.num_negatives > 0:
        anchors = sorted({p["anchor"] for p in pairs})
        vectors = encode(model, anchors, base.query_prompt, base.encode_batch_size)
        rows, report = mine_hard_negatives(
            pairs, corpus, stored.vectors, dict(zip(anchors, vectors)), settings, base.seed, base.search_chunk_size
        )
    else:
        rows = [{"anchor": p["anchor"], "positive": p["positive"], "source": p["source"]} for p in pairs]
        report = {"pairs": len(rows), "negatives_per_pair": 0}
    with atomic_path(NEGATIVES_DIR, is_dir=True) as out:
        write_jsonl(out / "negatives.jsonl", rows)
    write_json_atomic(METRICS_DIR / "mine.json", report)
    print(f"mine_negatives: {report}")


if __name__ == "__main__":
    run_stage(main)
