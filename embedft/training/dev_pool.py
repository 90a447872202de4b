"""The candidate pool the dev evaluation searches (`train.dev_pool: candidates`): each dev query's judged
documents plus its top `train.dev_pool_k` documents by the base model (over the stored base embeddings) and
by BM25.

Every dev evaluation encodes the documents it searches with the current checkpoint, so its cost follows their
number. The pool holds at most queries x (2k + judged) documents, whatever the corpus's size, and it holds
what a checkpoint's top 10 is drawn from in practice: the documents the base model and BM25 rank high, which
fine-tuning reorders. All dev queries search the pool's union, so each also meets the others' candidates as
distractors; a pool that holds the whole corpus gives exactly the full-corpus metrics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from embedft.config import BaseParams, Bm25Params, MachineSettings
from embedft.core import Document, PipelineError
from embedft.encoding import encode, load_embeddings, load_model_with
from embedft.retrieval import bm25_run, rank_corpus

logger = logging.getLogger(__name__)


@dataclass
class CandidatePool:
    """How the pool is drawn.

    Attributes:
        embeddings_dir: the base model's stored corpus embeddings (written by `embed_corpus`).
        base: the base model and its query prompt (the dev queries are encoded with them).
        machine: device and batch sizes for encoding the dev queries and searching the stored vectors.
        k: documents taken per query from each retriever (`train.dev_pool_k`).
        bm25: how BM25 reads text (the ``bm25`` params).
    """

    embeddings_dir: Path
    base: BaseParams
    machine: MachineSettings
    k: int
    bm25: Bm25Params

    def documents(self, queries: dict[str, str], judged: dict[str, set[str]], corpus: dict[str, Document],
                  max_documents: int = 0) -> set[str]:
        """The ids in the pool: ``judged`` (query id -> its judged documents) and both retrievers' top ``k``.

        Args:
            queries: query id -> text, the dev queries that are evaluated.
            judged: query id -> ids of the documents its qrels judge (any grade), all in ``corpus``.
            corpus: the whole corpus, in the stored embeddings' row order.
            max_documents: keep at most this many (`train.dev_max_documents`; many dev queries can make a large
                pool): every judged document, then the candidates by their best rank for any query and
                retriever; 0 = no limit.
        """
        pool = set().union(*judged.values()) if judged else set()
        if not queries:
            return pool
        query_ids = sorted(queries)
        texts = [queries[q] for q in query_ids]
        best_rank: dict[str, int] = {}
        for ranked in (self.dense_run(query_ids, texts, corpus), self.lexical_run(query_ids, texts, corpus)):
            for candidates in ranked.values():
                ordered = sorted(candidates.items(), key=lambda item: (-item[1], item[0]))
                for rank, (doc_id, _) in enumerate(ordered):
                    best_rank[doc_id] = min(rank, best_rank.get(doc_id, rank))
        others = sorted((d for d in best_rank if d not in pool), key=lambda d: (best_rank[d], d))
        room = len(others) if not max_documents else max(0, max_documents - len(pool))
        pool.update(others[:room])
        logger.info("dev candidate pool: %d of %d documents for %d queries (k = %d per retriever)",
                    len(pool), len(corpus), len(queries), self.k)
        return pool

    def dense_run(self, query_ids: list[str], texts: list[str], corpus: dict[str, Document]) -> dict[str, dict[str, float]]:
        """The base model's top ``k`` over the stored base embeddings."""
        stored = load_embeddings(self.embeddings_dir, corpus)
        if stored.info.get("model") != self.base.model:
            raise PipelineError(f"{self.embeddings_dir} holds embeddings of '{stored.info.get('model')}', not base.model "
                                f"'{self.base.model}'; run `dvc repro` (embed_corpus runs before train)")
        model = load_model_with(self.base, self.machine)
        vectors = encode(model, texts, self.base.query_prompt, self.machine.encode_batch_size, progress=False)
        del model  # only the dev queries needed it; training loads its own copy
        return rank_corpus(query_ids, vectors, stored, self.k, self.machine.search_chunk_size)

    def lexical_run(self, query_ids: list[str], texts: list[str], corpus: dict[str, Document]) -> dict[str, dict[str, float]]:
        """BM25's top ``k`` (documents that share no term with a query are not candidates)."""
        return bm25_run(list(corpus), [d.full_text for d in corpus.values()], query_ids, texts, self.k, self.bm25)
