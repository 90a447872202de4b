"""Stage `split`: divide the labelled queries into train/dev/test by query, seeded.

Writes ``data/split/{train,dev,test}/queries.jsonl`` and ``qrels.tsv``. A dataset without labelled queries
gets empty splits, so the rest of the pipeline still trains on synthesized pairs.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from embedft.config import DataParams, SplitParams, load_params
from embedft.core import PipelineError, Qrels, atomic_path, read_corpus, read_qrels, read_queries, relevant, run_stage, write_split
from embedft.core.artifacts import CORPUS_FILE, SPLIT_DIR, SPLIT_NAMES


def split_query_ids(query_ids: list[str], split: SplitParams, seed: int) -> dict[str, list[str]]:
    """Shuffle ids with ``seed`` and cut them by the split fractions; every id lands in exactly one split."""
    shuffled = sorted(query_ids)
    random.Random(seed).shuffle(shuffled)
    n_train = round(len(shuffled) * split.train_fraction)
    n_dev = round(len(shuffled) * split.dev_fraction)
    if split.test_fraction == 0:
        n_dev = len(shuffled) - n_train
    return {
        "train": sorted(shuffled[:n_train]),
        "dev": sorted(shuffled[n_train : n_train + n_dev]),
        "test": sorted(shuffled[n_train + n_dev :]),
    }


def subset(qrels: Qrels, query_ids: list[str]) -> Qrels:
    """The judgements of the given queries only."""
    return {q: qrels[q] for q in query_ids if q in qrels}


def judged(path: Path, queries: dict[str, str], corpus_ids: set[str]) -> Qrels:
    """The relevant judgements (grade above 0) of one qrels file; a file with none is an error, and queries left
    with none are counted in a warning."""
    qrels = read_qrels(path, queries, corpus_ids)
    kept = relevant(qrels)
    if not kept:
        grades = sorted({grade for docs in qrels.values() for grade in docs.values()})
        raise PipelineError(
            f"{path}: no judgement has a score above 0 (scores found: {', '.join(map(str, grades[:5]))}"
            f"{', ...' if len(grades) > 5 else ''}), so no query has a relevant document and the split would be empty. "
            "A score of 1 or more marks a relevant document; 0 and below mark documents judged not relevant")
    dropped = sorted(set(qrels) - set(kept))
    if dropped:
        print(f"split: warning: {len(dropped)} of the {len(qrels)} queries in {path} have no judgement above 0 and are "
              f"left out, e.g. '{dropped[0]}'")
    return kept


def split_labelled(
    data: DataParams, split: SplitParams, seed: int, corpus_ids: set[str], queries: dict[str, str]
) -> dict[str, Qrels]:
    """Per-split qrels: from a qrels folder's train/dev/test.tsv as given, or a single qrels file cut by query.

    A folder without dev.tsv gets its dev split cut from train.tsv in the ratio of the dev and train fractions.
    A query may be in one of the folder's files only.
    """
    qrels_path = data.qrels_path
    if qrels_path.is_dir():
        given = {
            name: judged(qrels_path / f"{name}.tsv", queries, corpus_ids)
            for name in SPLIT_NAMES
            if (qrels_path / f"{name}.tsv").exists()
        }
        if "test" not in given:
            raise PipelineError(f"{qrels_path}: a qrels folder needs test.tsv (and train.tsv, dev.tsv optionally)")
        train = given.get("train", {})
        for first, second in (("train", "test"), ("dev", "test"), ("train", "dev")):
            overlap = set(given.get(first, {})) & set(given.get(second, {}))
            if overlap:
                raise PipelineError(
                    f"{qrels_path}: {len(overlap)} queries are in both {first}.tsv and {second}.tsv, e.g. '{min(overlap)}'; "
                    "each query belongs to one split: remove it from one of the files"
                )
        if "dev" not in given:
            share = split.dev_fraction / max(split.dev_fraction + split.train_fraction, 1e-9)
            cut = SplitParams(train_fraction=1 - share, dev_fraction=share, test_fraction=0.0)
            ids = split_query_ids(list(train), cut, seed)
            given["train"], given["dev"] = subset(train, ids["train"]), subset(train, ids["dev"])
        return {name: given.get(name, {}) for name in SPLIT_NAMES}
    if split.test_fraction == 0:
        # Checked here, not in the params model: a qrels folder brings its own test.tsv and ignores the fractions.
        raise PipelineError(
            f"params.yaml: split.test_fraction is 0, so none of the labelled queries in {qrels_path} would be held out "
            "for the test split and evaluate could measure nothing: give it a share (the default is 0.3), or give "
            "data.qrels as a folder with train.tsv, dev.tsv and test.tsv")
    qrels = judged(qrels_path, queries, corpus_ids)
    ids = split_query_ids(list(qrels), split, seed)
    return {name: subset(qrels, ids[name]) for name in SPLIT_NAMES}


def main() -> None:
    params = load_params()
    data = params.data
    corpus = read_corpus(CORPUS_FILE)
    queries_path, qrels_path = data.queries_path, data.qrels_path
    queries: dict[str, str] = read_queries(queries_path) if queries_path.exists() else {}
    unjudged: list[str] = []
    if not qrels_path.exists():
        splits: dict[str, Qrels] = {name: {} for name in SPLIT_NAMES}
        if queries:
            # Queries without judgements (e.g. from a search log) still let `evaluate` compare how the systems rank.
            unjudged = sorted(queries)
            print(f"split: {queries_path} has queries but there is no {qrels_path}: all {len(queries)} go to the test "
                  "split unjudged, so evaluate can report system agreement but no quality metric")
        else:
            print(f"split: no labelled queries in {data.dir} (no {data.queries} or {data.qrels}); writing empty splits")
    elif not queries_path.exists():
        raise PipelineError(f"{qrels_path} judges queries, but the queries file {queries_path} does not exist: add it, "
                            "or set data.queries to the file that holds the queries' text")
    else:
        splits = split_labelled(data, params.split, params.base.seed, set(corpus), queries)
    with atomic_path(SPLIT_DIR, is_dir=True) as out:
        for name, qrels in splits.items():
            ids = unjudged if name == "test" and unjudged else sorted(qrels)
            write_split(out / name, {q: queries[q] for q in ids}, qrels)
    counts = {name: len(qrels) for name, qrels in splits.items()}
    print(f"split: {len(corpus)} documents; judged queries per split {json.dumps(counts)}")


if __name__ == "__main__":
    run_stage(main)
