"""The review file: a seeded sample of kept and dropped training pairs, as Markdown a person reads in a pull request.

Kept pairs are spread over their sources and dropped pairs over their drop reasons, so that a rare source
(LLM queries among thousands of title pairs) or a rare filter still shows up in the sample.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

from embedft.core import Pair
from embedft.pairs.filters import Dropped

Item = TypeVar("Item")
PASSAGE_CHARS = 240


def spread_sample(items: list[Item], size: int, group: Callable[[Item], str], seed: int) -> list[Item]:
    """A seeded sample of ``size`` items taking from each group in turn, so small groups are represented.

    Args:
        items: what to sample from (in a deterministic order).
        size: how many to take (all when there are fewer).
        group: the group an item belongs to.
        seed: seeds the order inside each group.
    """
    rng = random.Random(seed)
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(group(item), []).append(item)
    queues = {name: rng.sample(members, len(members)) for name, members in sorted(groups.items())}
    chosen: list[Item] = []
    while len(chosen) < size and any(queues.values()):
        for name in sorted(queues):
            if queues[name] and len(chosen) < size:
                chosen.append(queues[name].pop())
    return chosen


def cell(text: str, limit: int | None = None) -> str:
    """Text fit for one Markdown table cell: one line, pipes escaped, cut to ``limit`` characters."""
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if limit is None or len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def review_markdown(kept: list[Pair], dropped: list[Dropped], kept_size: int, dropped_size: int, seed: int) -> str:
    """The review file's text.

    Args:
        kept: the pairs written to data/pairs.
        dropped: the pairs the filters removed, with reasons.
        kept_size: kept pairs to show.
        dropped_size: dropped pairs to show.
        seed: seeds both samples.
    """
    kept_sample = spread_sample(kept, kept_size, lambda p: p.source, seed)
    dropped_sample = spread_sample(dropped, dropped_size, lambda d: d.reason, seed)
    kept_sample.sort(key=lambda p: (p.source, p.anchor, p.positive_id))
    dropped_sample.sort(key=lambda d: (d.reason, d.pair.source, d.pair.anchor, d.pair.positive_id))
    lines = [
        "# Training pairs: a sample to review",
        "",
        "Written by the `synthesize` stage (`python -m stages.synthesize`); regenerated on every run with the same",
        f"seed. {len(kept)} pairs kept, {len(dropped)} dropped; below, {len(kept_sample)} kept pairs spread over",
        f"their sources and {len(dropped_sample)} dropped pairs spread over the reasons. Passages are cut to",
        f"{PASSAGE_CHARS} characters. Counts per source and filter are in `reports/synthesize.json`.",
        "",
        "## Kept",
        "",
        "| source | query | passage | document |",
        "|---|---|---|---|",
    ]
    lines += [f"| {p.source} | {cell(p.anchor)} | {cell(p.positive, PASSAGE_CHARS)} | {cell(p.positive_id) or '(general)'} |"
              for p in kept_sample]
    lines += [
        "",
        "## Dropped",
        "",
        "| reason | source | query | passage | document | why |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {d.reason} | {d.pair.source} | {cell(d.pair.anchor)} | {cell(d.pair.positive, PASSAGE_CHARS)} | "
        f"{cell(d.pair.positive_id) or '(general)'} | {cell(d.detail)} |"
        for d in dropped_sample
    ]
    return "\n".join(lines) + "\n"
