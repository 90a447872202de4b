"""The review file of `mine_negatives`: for a seeded sample of queries, the positive and every candidate the
miner chose or dropped, with its scores and the reason, so a person can judge the negatives in a pull request."""

from __future__ import annotations

import random

from embedft.config import MineNegativesParams
from embedft.core import Pair
from embedft.mining.corpus_index import CorpusIndex
from embedft.mining.selection import (
    COPY_OF_POSITIVE,
    CROSS_ENCODER,
    KEPT,
    LABELLED_POSITIVE,
    MAX_SCORE,
    RELATIVE_MARGIN,
    MiningResult,
    Selection,
    relative_bound,
)

SNIPPET_CHARS = 160


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """One line of at most ``limit`` characters, safe inside a Markdown table cell."""
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def decision(selection: Selection, position: int, settings: MineNegativesParams) -> str:
    """What happened to one candidate, in words."""
    reason = int(selection.reasons[position])
    if reason == KEPT:
        return "**chosen**" if position in selection.chosen else "passed, not needed"
    if reason == LABELLED_POSITIVE:
        return "dropped: labelled positive"
    if reason == COPY_OF_POSITIVE:
        return "dropped: copy of a positive"
    if reason == MAX_SCORE:
        return f"dropped: dense > max_score {settings.max_score:g}"
    if reason == RELATIVE_MARGIN:
        return f"dropped: dense > {relative_bound(selection.positive_score, settings.relative_margin):.4f} (relative margin)"
    if reason == CROSS_ENCODER:
        bound = relative_bound(selection.positive_cross_score, settings.cross_encoder_margin)
        return f"dropped: cross-encoder > {bound:.4f} (margin)"
    raise ValueError(f"unknown reason code {reason}")


def number(value: float | None) -> str:
    return "" if value is None or value != value else f"{value:.4f}"


def query_section(number_in_sample: int, pair: Pair, selection: Selection, index: CorpusIndex,
                  sharing: int, settings: MineNegativesParams) -> list[str]:
    """The Markdown of one sampled query."""
    positive_id = f" `{pair.positive_id}`" if pair.positive_id else " (not a corpus document)"
    cross = f", cross-encoder {number(selection.positive_cross_score)}" if selection.positive_cross_score is not None else ""
    lines = [
        f"### {number_in_sample}. {snippet(pair.anchor, 200)}",
        "",
        f"Positive ({pair.source}){positive_id}: dense {number(selection.positive_score)}{cross}  ",
        f"> {snippet(pair.positive, 300)}",
        "",
    ]
    if sharing > 1:
        lines += [f"{sharing - 1} other pair(s) share this query; their positives are excluded too.", ""]
    shown = [p for p in range(len(selection.rows)) if not (selection.reasons[p] == KEPT and p not in selection.chosen)]
    unused = len(selection.rows) - len(shown)
    if not len(selection.rows):
        return lines + ["The window holds no candidate for this query.", ""]
    lines += ["| rank | dense | cross-encoder | decision | document |", "|---:|---:|---:|---|---|"]
    for position in sorted(shown, key=lambda p: int(selection.ranks[p])):
        row = int(selection.rows[position])
        lines.append(
            f"| {int(selection.ranks[position]) + 1} | {number(float(selection.scores[position]))} "
            f"| {number(float(selection.cross_scores[position]))} | {decision(selection, position, settings)} "
            f"| `{snippet(index.ids[row], 40)}` {snippet(index.texts[row])} |"
        )
    if not selection.chosen:
        lines.append("")
        lines.append("**No candidate survived the filters: this pair has no negative** (it is not padded).")
    if unused:
        lines += ["", f"{unused} more candidate(s) passed the filters but were not needed."]
    return lines + [""]


def run_description(settings: MineNegativesParams, model_name: str, depth: int) -> list[str]:
    """The review file's first lines: retriever, model, window, sampling and filters of this run."""
    def setting(value) -> str:
        return "off" if value is None or value == "" else f"`{value}`"

    cross_margin = f" (margin {setting(settings.cross_encoder_margin)})" if settings.cross_encoder else ""
    return [f"Retriever {setting(settings.retriever)}, dense model {setting(model_name)}, window ranks "
            f"{settings.range_min + 1}..{depth}, at most {settings.num_negatives} negative(s) per pair, sampling "
            f"{setting(settings.sampling)}; max_score {setting(settings.max_score)}, relative_margin "
            f"{setting(settings.relative_margin)}, cross-encoder {setting(settings.cross_encoder)}{cross_margin}."]


def review_markdown(
    pairs: list[Pair],
    result: MiningResult,
    index: CorpusIndex,
    settings: MineNegativesParams,
    seed: int,
    header: list[str],
) -> str:
    """The review file: a header, then a seeded sample of ``settings.review_queries`` queries (one pair each).

    Args:
        pairs: the training pairs, in the order of ``result.selections``.
        result: the mining outcome.
        index: the corpus.
        settings: the params, for the filter bounds shown.
        seed: seeds the sample of queries.
        header: lines describing the run (retriever, model, counts), put first.
    """
    first_pair: dict[str, int] = {}
    sharing: dict[str, int] = {}
    for number_of_pair, pair in enumerate(pairs):
        first_pair.setdefault(pair.anchor, number_of_pair)
        sharing[pair.anchor] = sharing.get(pair.anchor, 0) + 1
    anchors = sorted(first_pair)
    sample = random.Random(seed).sample(anchors, min(settings.review_queries, len(anchors)))
    lines = ["# Hard negatives: review sample", "", *header, ""]
    lines += [f"A seeded sample of {len(sample)} of {len(anchors)} queries (base.seed {seed}); ranks count from 1.", ""]
    for number_in_sample, anchor in enumerate(sample, start=1):
        position = first_pair[anchor]
        lines += query_section(number_in_sample, pairs[position], result.selections[position], index, sharing[anchor], settings)
    return "\n".join(lines).rstrip() + "\n"
