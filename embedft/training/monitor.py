"""Watching training: dev-split retrieval evaluation, training curves in dvclive's format, a last-step evaluation.

The dev evaluation is sentence-transformers' InformationRetrievalEvaluator: the dev queries (with the query
prompt) against the corpus (with the document prompt), cosine similarity, binary relevance (any grade above
0 is relevant). With `train.dev_pool: candidates` it searches a candidate pool (:mod:`embedft.training.dev_pool`:
each dev query's judged documents and its top documents by the base model and BM25), so its cost follows the
dev queries rather than the corpus; with `corpus` it searches the corpus, or on a corpus larger than
`train.dev_max_documents` a seeded subset: every document relevant to a dev query plus a random draw of the
others. Its numbers pick the checkpoint and drive early stopping; they are not the test-split numbers of
`evaluate`, which searches the whole corpus with graded qrels.
"""

from __future__ import annotations

import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from dvclive.plots import Metric
from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
from sentence_transformers.util import cos_sim
from transformers import TrainerCallback

from embedft.config import BaseParams, MachineSettings
from embedft.core import PipelineError, atomic_path, read_corpus, read_split, relevant
from embedft.training.dev_pool import CandidatePool

DEV_NAME = "dev"
DEV_METRICS = {"ndcg@10": "cosine_ndcg@10", "mrr@10": "cosine_mrr@10", "recall@10": "cosine_recall@10", "map@100": "cosine_map@100"}
"""Dev metrics reported in metrics/train.json -> the evaluator's key (after the ``dev_`` prefix)."""
BEST_MODEL_METRIC = f"{DEV_NAME}_{DEV_METRICS['ndcg@10']}"
"""The trainer's `metric_for_best_model`: dev nDCG@10."""
DEV_CURVE_LABELS = {"ndcg@10": "nDCG@10", "mrr@10": "MRR@10", "recall@10": "Recall@10"}
"""The dev metrics drawn during training -> their column in ``plots/train/dev.tsv``, which the chart's legend shows."""
TRAINING_CURVES = {"loss": "loss", "learning_rate": "learning_rate"}
DEV_CURVES = {f"dev_{name.replace('@', '_at_')}": f"eval_{DEV_NAME}_{DEV_METRICS[name]}" for name in DEV_CURVE_LABELS}
CURVES = {**TRAINING_CURVES, **DEV_CURVES}
"""Curve name (its scratch file ``<name>.tsv`` while training runs) -> the trainer log key it records."""
DEV_FILE = "dev.tsv"
DEV_COLUMNS = dict(zip(DEV_CURVES, DEV_CURVE_LABELS.values()))
"""Dev curve name -> its column in :data:`DEV_FILE`."""


@dataclass
class DevSet:
    """The dev queries, their relevant documents, and the documents searched.

    Attributes:
        queries: query id -> text, only queries with at least one relevant document.
        relevant_docs: query id -> ids of its relevant documents.
        documents: document id -> text (title and text): the candidate pool, the corpus or its seeded subset.
        corpus_documents: documents in the whole corpus.
        searched: which documents those are: ``candidates`` (the pool), ``corpus`` or ``subset``.
    """

    queries: dict[str, str]
    relevant_docs: dict[str, set[str]]
    documents: dict[str, str]
    corpus_documents: int
    searched: str = "corpus"


def load_dev_set(split_dir: Path, corpus_file: Path, max_documents: int, seed: int,
                 pool: CandidatePool | None = None) -> DevSet | None:
    """The dev split as an IR task, or None when it has no judged query.

    Args:
        split_dir: folder written by `split` (its ``dev/`` is read).
        corpus_file: the canonical corpus.
        max_documents: search at most this many documents (relevant ones always kept): a seeded subset of the
            corpus, or the best-ranked part of ``pool``; 0 = no limit.
        seed: seeds the draw of the subset.
        pool: search this candidate pool instead of the corpus.
    """
    queries, qrels = read_split(split_dir / "dev")
    judged = relevant(qrels)
    if not judged:
        return None
    corpus = read_corpus(corpus_file)
    relevant_docs = {q: {d for d in docs if d in corpus} for q, docs in judged.items() if q in queries}
    relevant_docs = {q: docs for q, docs in relevant_docs.items() if docs}
    if not relevant_docs:
        return None
    dev_queries = {q: queries[q] for q in sorted(relevant_docs)}
    keep, searched = set(corpus), "corpus"
    if pool is not None:
        # Judged documents of any grade: a grade-0 judgement is a near miss someone looked at, a fair distractor.
        judged_docs = {q: {d for d in qrels[q] if d in corpus} for q in dev_queries}
        keep, searched = pool.documents(dev_queries, judged_docs, corpus, max_documents), "candidates"
    elif max_documents and len(corpus) > max_documents:
        needed = set().union(*relevant_docs.values())
        others = sorted(set(corpus) - needed)
        keep = needed | set(random.Random(seed).sample(others, max(0, min(len(others), max_documents - len(needed)))))
        searched = "subset"
    documents = {doc_id: document.full_text for doc_id, document in corpus.items() if doc_id in keep}
    return DevSet(dev_queries, relevant_docs, documents, len(corpus), searched)


class DevEvaluator(InformationRetrievalEvaluator):
    """InformationRetrievalEvaluator that also adds up the seconds it spends (excluded from training speed)."""

    seconds: float = 0.0

    def __call__(self, *args, **kwargs) -> dict[str, float]:
        started = time.perf_counter()
        try:
            return super().__call__(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started


def dev_evaluator(dev: DevSet, base: BaseParams, machine: MachineSettings) -> DevEvaluator:
    """The evaluator run every `train.eval_steps`, with the same prompts that mining and evaluation use."""
    return DevEvaluator(
        queries=dev.queries,
        corpus=dev.documents,
        relevant_docs=dev.relevant_docs,
        name=DEV_NAME,
        score_functions={"cosine": cos_sim},
        ndcg_at_k=[10], mrr_at_k=[10], map_at_k=[100], accuracy_at_k=[10], precision_recall_at_k=[10],
        batch_size=machine.encode_batch_size,
        query_prompt=base.query_prompt or None,
        corpus_prompt=base.document_prompt or None,
        corpus_chunk_size=machine.search_chunk_size,
        write_csv=False,
        show_progress_bar=False,
    )


def dev_metrics(logs: dict[str, float], prefix: str = "eval_") -> dict[str, float]:
    """The reported dev metrics (ndcg@10, mrr@10, recall@10, map@100) from an evaluator or trainer log."""
    return {name: round(float(logs[f"{prefix}{DEV_NAME}_{key}"]), 6) for name, key in DEV_METRICS.items()}


class TrainingCurves(TrainerCallback):
    """Records the loss and learning rate at every trainer log, and the dev metrics at every evaluation.

    Each curve is written by dvclive's metric history writer (``dvclive.plots.Metric``, what ``Live.log_metric``
    uses) to ``<scratch>/metrics/<name>.tsv``, columns ``step`` and ``<name>``; :meth:`publish` then puts the
    loss and learning rate as they are, and the three dev curves as one table, into the stage's output folder
    atomically. ``dvclive.Live`` itself is not used: it ties itself to
    the DVC repository (experiments, ``dvc.yaml``, Studio), none of which a pipeline stage wants, and in a Git
    repository without commits it fails (dvclive 3.49: ``SCMError: Empty git repo``).

    The scratch folder lives with the checkpoints, so a resumed run continues the curves of the run it resumes.
    Only the main process writes.
    """

    def __init__(self, scratch: Path, write: bool = True):
        """
        Args:
            scratch: folder for the curves while training runs.
            write: False in every process but the main one.
        """
        self.scratch = Path(scratch)
        self.write = write
        self.curves = {name: Metric(name, str(self.scratch)) for name in CURVES}

    def path(self, name: str) -> Path:
        """The scratch file of curve ``name`` (dvclive's layout: ``<scratch>/metrics/<name>.tsv``)."""
        return self.scratch / Metric.subfolder / f"{name}.tsv"

    def start(self, resumed_step: int) -> None:
        """Begin a run: a fresh one clears old curves; a resumed one drops the points after its checkpoint."""
        if not self.write:
            return
        if resumed_step == 0:
            shutil.rmtree(self.scratch, ignore_errors=True)
            return
        for name in CURVES:
            path = self.path(name)
            if path.is_file():
                header, *rows = path.read_text(encoding="utf-8").splitlines()
                kept = [row for row in rows if int(row.split("\t")[0]) <= resumed_step]
                path.write_text("\n".join([header, *kept]) + "\n", encoding="utf-8")

    def record(self, step: int, values: dict[str, float]) -> None:
        """Append ``values`` (curve name -> value) at ``step``."""
        if not self.write:
            return
        for name, value in values.items():
            curve = self.curves[name]
            curve.step = step
            curve.dump(float(value))

    def on_log(self, args, state, control, logs=None, **kwargs):
        # The end-of-training summary log has train_loss etc. instead of these keys: nothing is recorded from it.
        self.record(state.global_step, {name: logs[key] for name, key in CURVES.items() if logs and key in logs})

    def publish(self, destination: Path) -> list[Path]:
        """Replace ``destination`` atomically with ``loss.tsv``, ``learning_rate.tsv`` and ``dev.tsv``.

        ``dev.tsv`` has a ``step`` column and one column per :data:`DEV_COLUMNS`, so one chart reads one file;
        without a dev split it is its header only, so the folder always holds the same files. The training
        curves must exist.
        """
        missing = [str(self.path(name)) for name in TRAINING_CURVES if not self.path(name).is_file()]
        if missing:
            raise PipelineError(f"no training curve was logged to {', '.join(missing)}")
        with atomic_path(destination, is_dir=True) as out:
            for name in TRAINING_CURVES:
                shutil.copyfile(self.path(name), out / f"{name}.tsv")
            (out / DEV_FILE).write_text(self.dev_table(), encoding="utf-8")
        return [Path(destination) / name for name in (*(f"{curve}.tsv" for curve in TRAINING_CURVES), DEV_FILE)]

    def dev_table(self) -> str:
        """The dev curves side by side: one row per evaluated step, an empty cell where a curve has no point."""
        columns = {name: self.points(name) for name in DEV_COLUMNS}
        steps = sorted({step for points in columns.values() for step in points}, key=int)
        lines = ["\t".join(["step", *DEV_COLUMNS.values()])]
        lines += ["\t".join([step, *(columns[name].get(step, "") for name in DEV_COLUMNS)]) for step in steps]
        return "\n".join(lines) + "\n"

    def points(self, name: str) -> dict[str, str]:
        """A scratch curve as step -> value, both as written (no point: an empty dict)."""
        if not self.path(name).is_file():
            return {}
        rows = self.path(name).read_text(encoding="utf-8").splitlines()[1:]
        return dict(row.split("\t")[:2] for row in rows if row)


class LogAtCheckpoints(TrainerCallback):
    """Log the loss at every step that writes a checkpoint, as well as every `train.logging_steps`.

    The trainer keeps the loss of the steps since its last log in memory only, so a checkpoint written between
    two logs would lose those steps' losses, and a run resumed from it could not report the mean loss of the
    whole run (:func:`embedft.training.run_report.mean_training_loss`). Logging first puts them in the log
    history the checkpoint saves. Added after the callbacks that decide to save, it adds a point to the loss and
    learning-rate curves at a checkpoint step that is not a logging step, in a resumed run and an uninterrupted
    one alike.
    """

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save:
            control.should_log = True
        return control


class EvaluateAtLastStep(TrainerCallback):
    """Evaluate and checkpoint at the last step too, so the final model is measured and can be chosen as best.

    Without a dev split no checkpoint is chosen and the stage saves the final model itself, so the checkpoint the
    trainer writes at the last step (weights, optimizer and scheduler: seconds on a CPU, and most of a short GPU
    run's overhead over the plain recipe) is skipped; the loss is still logged there, as
    :class:`LogAtCheckpoints` would at a checkpoint, so the curves end at the last step either way.
    """

    def __init__(self, evaluate: bool):
        self.evaluate = evaluate

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            if self.evaluate:
                control.should_save = control.should_evaluate = True
            else:
                control.should_log = control.should_log or control.should_save
                control.should_save = False
        return control
