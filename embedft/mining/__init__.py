"""Hard negatives without false negatives: each anchor's candidates from a dense, BM25 or hybrid retriever (exact
search or FAISS), filters that keep labelled positives, their copies and too-close candidates out (optionally
judged by a cross-encoder), an audit of the false negatives that get through, and the review sample."""

from embedft.mining.candidates import window_end
from embedft.mining.corpus_index import CorpusIndex
from embedft.mining.miner import mine, miner_name, mining_report, mining_summary, output_rows, read_labelled
from embedft.mining.review import review_markdown, run_description
from embedft.mining.selection import REASONS, MiningResult, Selection, mine_hard_negatives

__all__ = ["REASONS", "CorpusIndex", "MiningResult", "Selection", "mine", "mine_hard_negatives", "miner_name",
           "mining_report", "mining_summary", "output_rows", "read_labelled", "review_markdown", "run_description", "window_end"]
