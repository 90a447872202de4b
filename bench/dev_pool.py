"""Does the dev candidate pool (`train.dev_pool: candidates`) pick the checkpoint the whole corpus picks?

One training run of the `train` stage's function on a finished pipeline's data (``--project``, read only: its
params, split, corpus, negatives and base embeddings). At step 0 (the base model) and at every ``--eval-steps``
and the last step, the current model encodes the whole corpus once, and each dev query's nDCG@10 (binary
relevance, cosine, as the stage's evaluator) is computed over the whole corpus and over the candidate pool of
each ``--k`` (:class:`embedft.training.CandidatePool`, the stage's own code on the stored base embeddings and
BM25). Ranking within the pool is the same as encoding only the pool, since a document's vector does not depend
on the others; the step-0 full-corpus figure is checked against the stage's evaluator (`dev_evaluator`).

With ``--scifact``, the same checkpoints (at ``--scifact-steps``) are also scored on SciFact's test queries over
its corpus and over its pools (dense candidates from the base model's vectors at `train.max_seq_length`, as
nothing stores SciFact's base embeddings here): a fixed set of checkpoints out of their training domain,
whose order the pool must keep.

Picks follow the trainer: the best dev nDCG@10 (first on ties) among the evaluations after step 0, with early
stopping after `train.early_stopping_patience` evaluations without a gain; on the project's own schedule
(`train.eval_steps` and the last step) and on all evaluated steps.

    python bench/dev_pool.py --project /tmp/repro --eval-steps 25 --k 10 20 50 100 --scifact ../shared/bench/scifact
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from transformers import TrainerCallback

from embedft.config import BaseParams, Bm25Params, MachineSettings, load_params
from embedft.core import Document, read_corpus, read_qrels, read_queries, read_split, relevant
from embedft.encoding import StoredEmbeddings, encode, save_embeddings
from embedft.training import CandidatePool, build_training_set, fine_tune, load_dev_set
from embedft.training.monitor import dev_evaluator

ROOT = Path(__file__).resolve().parents[1]


class Task:
    """Dev queries over a corpus, with their pools per k."""

    def __init__(self, name: str, queries: dict[str, str], qrels: dict[str, dict[str, int]], corpus: dict[str, Document]):
        self.name, self.corpus = name, corpus
        self.relevant = {q: set(docs) & set(corpus) for q, docs in relevant(qrels).items() if q in queries}
        self.relevant = {q: docs for q, docs in self.relevant.items() if docs}
        self.queries = {q: queries[q] for q in sorted(self.relevant)}
        self.judged = {q: {d for d in qrels[q] if d in corpus} for q in self.queries}
        self.doc_ids = list(corpus)
        self.pools: dict[int, np.ndarray] = {}

    def add_pools(self, pool: CandidatePool, ks: list[int]) -> None:
        position = {d: i for i, d in enumerate(self.doc_ids)}
        for k in ks:
            pool.k = k
            self.pools[k] = np.array(sorted(position[d] for d in pool.documents(self.queries, self.judged, self.corpus)))

    def scores(self, model, base: BaseParams, machine: MachineSettings) -> dict:
        """Mean nDCG@10 over the corpus and over each pool."""
        doc_vectors = encode(model, [d.full_text for d in self.corpus.values()], base.document_prompt,
                             machine.encode_batch_size, progress=False)
        query_ids = list(self.queries)
        query_vectors = encode(model, [self.queries[q] for q in query_ids], base.query_prompt, machine.encode_batch_size,
                               progress=False)
        similarities = query_vectors @ doc_vectors.T
        result = {"corpus": mean_ndcg(similarities, np.arange(len(self.doc_ids)), query_ids, self)}
        for k, rows in self.pools.items():
            result[f"k{k}"] = mean_ndcg(similarities[:, rows], rows, query_ids, self)
        return {name: round(value, 6) for name, value in result.items()}


def mean_ndcg(similarities: np.ndarray, rows: np.ndarray, query_ids: list[str], task: Task, k: int = 10) -> float:
    """Mean binary nDCG@k of each query's ranking of the documents at ``rows`` (ties: corpus order)."""
    total = 0.0
    for i, query_id in enumerate(query_ids):
        order = np.argsort(-similarities[i], kind="stable")[:k]
        ranked = [task.doc_ids[rows[j]] for j in order]
        dcg = sum(1.0 / math.log2(rank + 2) for rank, d in enumerate(ranked) if d in task.relevant[query_id])
        ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(k, len(task.relevant[query_id]))))
        total += dcg / ideal
    return total / len(query_ids)


def pick(history: list[tuple[int, float]], patience: int) -> int:
    """The step the trainer keeps: the first best score, stopping after ``patience`` evaluations without a gain."""
    best_step, best, waited = None, -1.0, 0
    for step, score in history:
        if score > best:
            best_step, best, waited = step, score, 0
        else:
            waited += 1
            if patience and waited >= patience:
                break
    return best_step


def order_agreement(a: list[float], b: list[float]) -> float:
    """Share of checkpoint pairs that both scorings order the same way (ties count as disagreement unless both tie)."""
    pairs = [(i, j) for i in range(len(a)) for j in range(i + 1, len(a))]
    same = sum(np.sign(a[i] - a[j]) == np.sign(b[i] - b[j]) for i, j in pairs)
    return round(same / len(pairs), 4) if pairs else 1.0


class Measure(TrainerCallback):
    """Scores every task at the chosen steps (the trainer's own dev evaluation is off in this run)."""

    def __init__(self, tasks: dict[str, tuple[Task, set[int] | None]], base: BaseParams, machine: MachineSettings, every: int):
        self.tasks, self.base, self.machine, self.every = tasks, base, machine, every
        self.history: list[dict] = []

    def measure(self, step: int, model, last: bool = False) -> None:
        started = time.perf_counter()
        row = {"step": step}
        for name, (task, steps) in self.tasks.items():
            if steps is None or step in steps or last:
                row[name] = task.scores(model, self.base, self.machine)
        model.train()
        row["seconds"] = round(time.perf_counter() - started, 1)
        self.history.append(row)
        print(json.dumps(row), flush=True)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0 or state.global_step >= state.max_steps:
            self.measure(state.global_step, model, last=state.global_step >= state.max_steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, default=Path("/tmp/repro"), help="a finished `dvc repro` (read only)")
    parser.add_argument("--eval-steps", type=int, default=25)
    parser.add_argument("--k", type=int, nargs="+", default=[10, 20, 50, 100])
    parser.add_argument("--scifact", type=Path, help="SciFact in BEIR layout: also score the checkpoints there")
    parser.add_argument("--scifact-steps", type=int, nargs="*", default=[0, 50], help="steps scored on SciFact (and the last)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "dev_pool.json")
    args = parser.parse_args()

    project = args.project
    params = load_params(project / "params.yaml")
    base, settings = params.base, params.train
    machine = MachineSettings(resume=False)
    corpus_file = project / "data" / "corpus" / "corpus.jsonl"
    corpus = read_corpus(corpus_file)
    queries, qrels = read_split(project / "data" / "split" / "dev")
    sample = Task("sample", queries, qrels, corpus)
    sample.add_pools(CandidatePool(project / "data" / "embeddings" / "base", base, machine, 0, params.bm25), args.k)
    tasks: dict[str, tuple[Task, set[int] | None]] = {"sample": (sample, None)}
    work = Path(tempfile.mkdtemp(prefix="dev_pool_"))
    if args.scifact:
        scifact_corpus = read_corpus(args.scifact / "corpus.jsonl")
        scifact = Task("scifact", read_queries(args.scifact / "queries.jsonl"),
                       read_qrels(args.scifact / "qrels" / "test.tsv"), scifact_corpus)
        from embedft.encoding import load_model_with

        model = load_model_with(base, machine, max_seq_length=settings.max_seq_length, length_key="train.max_seq_length")
        vectors = encode(model, [d.full_text for d in scifact_corpus.values()], base.document_prompt,
                         machine.encode_batch_size, progress=False)
        save_embeddings(work / "scifact_base", StoredEmbeddings(vectors, list(scifact_corpus), {"model": base.model}))
        scifact.add_pools(CandidatePool(work / "scifact_base", base, machine, 0, Bm25Params()), args.k)
        tasks["scifact"] = (scifact, set(args.scifact_steps))

    # The stage's evaluator on the base model: the full-corpus figure this script computes must equal it.
    dev = load_dev_set(project / "data" / "split", corpus_file, 0, base.seed)
    from embedft.encoding import load_model_with

    reference = dev_evaluator(dev, base, machine)(load_model_with(base, machine, max_seq_length=settings.max_seq_length,
                                                                  length_key="train.max_seq_length"))
    settings = settings.model_copy(update={"early_stopping_patience": 0})
    training = build_training_set(settings, project / "data" / "negatives", min_group_size=settings.batch_size)
    measure = Measure(tasks, base, machine, args.eval_steps)
    started = time.perf_counter()

    class AtStart(TrainerCallback):
        def on_train_begin(self, targs, state, control, model=None, **kwargs):
            measure.measure(0, model)

    _, report, _ = fine_tune(training, None, base, settings, machine, work / "checkpoints", callbacks=[AtStart(), measure])
    model_steps = report["steps"]
    schedule = sorted({s for s in range(params.train.eval_steps, model_steps + 1, params.train.eval_steps)} | {model_steps})
    patience = params.train.early_stopping_patience
    summary: dict = {}
    for name, (task, _) in tasks.items():
        rows = [(r["step"], r[name]) for r in measure.history if name in r]
        scorings = list(rows[0][1])
        entry = {"queries": len(task.queries), "corpus_documents": len(task.corpus),
                 "pool_documents": {f"k{k}": int(len(v)) for k, v in task.pools.items()}, "checkpoints": [s for s, _ in rows]}
        trained = [(s, v) for s, v in rows if s > 0]
        for scoring in scorings:
            entry.setdefault("picked_all_steps", {})[scoring] = pick([(s, v[scoring]) for s, v in trained], patience)
            entry.setdefault("picked_on_schedule", {})[scoring] = pick(
                [(s, v[scoring]) for s, v in trained if s in schedule], patience)
            entry.setdefault("order_agreement_with_corpus", {})[scoring] = order_agreement(
                [v["corpus"] for _, v in rows], [v[scoring] for _, v in rows])
        summary[name] = entry
    result = {
        "command": " ".join(["python", "bench/dev_pool.py", *sys.argv[1:]]),
        "project": str(project), "eval_steps": args.eval_steps, "schedule": schedule, "patience": patience,
        "stage_evaluator_base_ndcg@10": round(float(reference["dev_cosine_ndcg@10"]), 6),
        "history": measure.history, "summary": summary,
        "train_seconds": report["train_seconds"], "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
