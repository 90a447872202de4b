"""The reranked system: a cross-encoder (evaluate.rerank_cross_encoder) over the top documents of the system best
on dev, scored on test and dev like every other system."""

from __future__ import annotations

from embedft.config import EvaluateParams, MachineSettings
from embedft.core import Document, Qrels
from embedft.encoding import CachedPairScorer, load_cross_encoder
from embedft.evaluation.ir_metrics import mean_metrics, per_query_metrics
from embedft.evaluation.shipping import best_on_dev, shipping_candidates
from embedft.retrieval import Run, rerank

RERANK_KEY = "evaluate.rerank_cross_encoder"


def dev_headline_scores(dev_qrels: Qrels, dev_runs: dict[str, Run], settings: EvaluateParams) -> dict[str, float]:
    """Each system's mean headline metric on the judged dev queries."""
    headline = settings.measures()[0]
    return {name: mean_metrics(per_query_metrics(dev_qrels, run, (headline,)))[settings.headline] for name, run in dev_runs.items()}


def add_reranked(runs: dict[str, Run], dev_runs: dict[str, Run], dev_qrels: Qrels, dev_scores: dict[str, float],
                 texts: dict[str, str], corpus: dict[str, Document], settings: EvaluateParams, machine: MachineSettings) -> str | None:
    """Add 'reranked' to the test runs and the dev runs (with its dev score) when a cross-encoder is configured.

    The cross-encoder reranks the system best on dev (ties to the cheaper, as the shipped system's choice), or
    the weighted hybrid when there are no judged dev queries; it reads each pair whole (its own length limit).

    Args:
        runs: the test rankings by system; 'reranked' is added.
        dev_runs: the dev rankings by system (empty without judged dev queries); 'reranked' is added.
        dev_qrels: the dev judgements.
        dev_scores: the dev headline score per system; 'reranked' is added.
        texts: query id -> text, for test and dev queries.
        corpus: the documents (title and text are what the cross-encoder reads).
        settings: the ``evaluate`` params (cross-encoder, top k).
        machine: device and cross-encoder batch size.

    Returns:
        the system that was reranked, or None when no cross-encoder is configured.
    """
    if not settings.rerank_cross_encoder:
        return None
    first = best_on_dev(dev_scores, shipping_candidates(list(dev_scores))) or "hybrid"
    model = load_cross_encoder(settings.rerank_cross_encoder, machine.device, None, machine.on_missing_gpu, key=RERANK_KEY)
    scorer = CachedPairScorer(model, machine.cross_encoder_batch_size, progress=True, key=RERANK_KEY)
    documents = {doc_id: document.full_text for doc_id, document in corpus.items()}
    runs["reranked"] = rerank(runs[first], texts, documents, scorer, settings.rerank_top_k)
    if dev_runs:
        dev_runs["reranked"] = rerank(dev_runs[first], texts, documents, scorer, settings.rerank_top_k)
        dev_scores.update(dev_headline_scores(dev_qrels, {"reranked": dev_runs["reranked"]}, settings))
    return first
