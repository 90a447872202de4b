"""Training pairs and their quality control: every source (labelled queries, the corpus structure, search logs,
an LLM, a local query generator, a general-domain mix), the filters, and the review sample."""

from embedft.pairs.filters import DROP_REASONS, Dropped, held_out_index
from embedft.pairs.review import review_markdown
from embedft.pairs.synthesis import base_model_round_trip, gather_candidates, split_run_counts, synthesize_pairs

__all__ = ["DROP_REASONS", "Dropped", "base_model_round_trip", "gather_candidates", "held_out_index", "review_markdown",
           "split_run_counts", "synthesize_pairs"]
