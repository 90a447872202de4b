"""The forms in which texts are kept and compared.

:func:`normalise_query` is the one form in which queries are compared anywhere in the pipeline: the leakage
guard of `synthesize`, the duplicate filter, the merging of search-log queries, the labelled-query lookup of
`mine_negatives` and the leakage count of `evaluate` all use it, so they agree on what "the same query" is.
"""

from __future__ import annotations

import re
import unicodedata

EDGE_PUNCTUATION = " \t\n\"'`.,;:!?()[]{}<>"
"""Characters removed from both ends of a query before comparing it."""
WHITESPACE = re.compile(r"\s+")


def clean_query(text: str) -> str:
    """Collapse runs of whitespace and trim: the form in which a query is kept."""
    return WHITESPACE.sub(" ", text).strip()


def normalise_query(text: str) -> str:
    """The form in which queries are compared: Unicode NFKC, case-folded, whitespace collapsed, and
    punctuation at either end removed (so 'What is X?' and 'what is x' are the same query)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return WHITESPACE.sub(" ", folded).strip(EDGE_PUNCTUATION)
