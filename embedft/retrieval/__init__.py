"""Finding documents for queries: exact dense top-k in bounded memory, BM25, rankings by id, their fusion and
reranking."""

from embedft.retrieval.bm25 import bm25_run, bm25_search
from embedft.retrieval.exact import BYTES_PER_SCORE, exact_search, normalise_rows, search_block_shape, top_rows_stable
from embedft.retrieval.fusion import normalise_scores, reciprocal_rank_fusion, weighted_fusion
from embedft.retrieval.reranking import rerank
from embedft.retrieval.runs import Run, rank_corpus, to_run

__all__ = ["BYTES_PER_SCORE", "Run", "bm25_run", "bm25_search", "exact_search", "normalise_rows", "normalise_scores",
           "rank_corpus", "reciprocal_rank_fusion", "rerank", "search_block_shape", "to_run", "top_rows_stable", "weighted_fusion"]
