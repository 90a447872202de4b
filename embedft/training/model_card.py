"""The fine-tuned model's card (``README.md`` in the model folder): what it was trained from, on and with,
how it scored, and how to load it with its prompts.

The `train` stage writes the card with the dev metrics; the test metrics come later, from `evaluate`. The card
says where they are, and :func:`card_with_test_metrics` fills its test section for a stage that has them (it
must write the result to a file of its own: the model folder is the `train` stage's DVC output).
The card holds no timestamps or timings, so the same training gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from embedft.config import BaseParams, TrainParams

TEST_SECTION = "## Test metrics"
METRIC_ORDER = ("ndcg@10", "mrr@10", "recall@10", "map@100")


@dataclass
class CardFacts:
    """Everything the card states.

    Attributes:
        base_model: `base.model` as configured.
        model_path: where the stage saved the model (used in the loading example).
        source_file: the training rows' file.
        pairs_by_source: training pairs used, per source (labelled, title, section, ...).
        examples: training examples per epoch after shaping for the loss.
        loss: the loss as built, e.g. 'MatryoshkaLoss(MultipleNegativesRankingLoss, dims 384/256, ...)'.
        steps: optimizer steps taken.
        epochs: epochs completed (fractional when stopped early or by max_steps).
        effective_batch_size: pairs per optimizer step over all processes and accumulation steps.
        non_default: params that differ from the template's defaults, key -> value.
        query_prompt, document_prompt: the prompts saved with the model.
        matryoshka_dims: the widths trained (empty when Matryoshka is off).
        lora: whether the model was trained with LoRA adapters (merged before saving).
        dev: dev-split results (queries, documents, corpus_documents, base, best, final, best_step, final_step,
            stopped_early), or None without a dev split.
    """

    base_model: str
    model_path: str
    source_file: str
    pairs_by_source: dict[str, int]
    examples: int
    loss: str
    steps: int
    epochs: float
    effective_batch_size: int
    non_default: dict[str, object] = field(default_factory=dict)
    query_prompt: str = ""
    document_prompt: str = ""
    matryoshka_dims: list[int] = field(default_factory=list)
    lora: bool = False
    dev: dict | None = None

    @property
    def pairs(self) -> int:
        """Training pairs used, over all sources."""
        return sum(self.pairs_by_source.values())


def non_default_params(base: BaseParams, settings: TrainParams) -> dict[str, object]:
    """`train.*` and `base.*` keys whose value differs from the template's default, dotted key -> value, sorted."""
    changed: dict[str, object] = {}
    for section, current, default in (("base", base, BaseParams()), ("train", settings, TrainParams())):
        flat_current, flat_default = _flatten(current.model_dump()), _flatten(default.model_dump())
        changed.update({f"{section}.{key}": value for key, value in flat_current.items() if flat_default.get(key) != value})
    return dict(sorted(changed.items()))


def _flatten(values: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _metrics_table(columns: dict[str, dict[str, float]]) -> list[str]:
    """A Markdown table: one row per metric, one column per named set of metrics."""
    lines = ["| metric | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for metric in METRIC_ORDER:
        if all(metric in values for values in columns.values()):
            lines.append(f"| {metric} | " + " | ".join(f"{values[metric]:.4f}" for values in columns.values()) + " |")
    return lines


def _usage(facts: CardFacts) -> list[str]:
    lines = ["```python", "from sentence_transformers import SentenceTransformer", "",
             f'model = SentenceTransformer("{facts.model_path}")']
    if facts.query_prompt or facts.document_prompt:
        lines += ["# encode_query / encode_document put the saved prompts before each text:",
                  f"#   query prompt:    {facts.query_prompt!r}", f"#   document prompt: {facts.document_prompt!r}",
                  'queries = model.encode_query(["how do I parse JSON?"])',
                  'documents = model.encode_document(["json.loads parses a JSON document."])']
    else:
        lines += ["# trained without prompts: encode queries and documents as they are",
                  'queries = model.encode(["how do I parse JSON?"])',
                  'documents = model.encode(["json.loads parses a JSON document."])']
    lines += ["scores = model.similarity(queries, documents)  # cosine", "```"]
    if facts.matryoshka_dims:
        smallest = min(facts.matryoshka_dims)
        lines += ["", f"Trained with Matryoshka widths {', '.join(map(str, facts.matryoshka_dims))}: load with "
                  f"`SentenceTransformer(path, truncate_dim={smallest})` (or any listed width) for shorter vectors; "
                  "`metrics/truncate.json` measures what each width costs."]
    return lines


def render_model_card(facts: CardFacts) -> str:
    """The card as Markdown."""
    lines = [f"# {facts.base_model}, fine-tuned for retrieval", "",
             f"Fine-tuned from `{facts.base_model}` by this project's `train` stage "
             f"({'LoRA adapters, merged into the weights' if facts.lora else 'all weights'}).", "",
             "## How to load it", "", *_usage(facts), "",
             "## Training data", "", f"{facts.pairs} pairs from `{facts.source_file}`, by source:", "",
             "| source | pairs |", "|---|---|",
             *(f"| {source} | {count} |" for source, count in facts.pairs_by_source.items()), "",
             f"They made {facts.examples} training examples per epoch for the loss.", "",
             "## Training", "",
             f"- loss: {facts.loss}",
             f"- steps: {facts.steps} ({facts.epochs:.2f} epochs), {facts.effective_batch_size} pairs per optimizer step"]
    if facts.dev and facts.dev.get("stopped_early"):
        lines.append("- stopped early: dev nDCG@10 stopped improving")
    lines += ["", "Settings that differ from the template's defaults:", ""]
    if facts.non_default:
        lines += ["| key | value |", "|---|---|", *(f"| `{k}` | `{v}` |" for k, v in facts.non_default.items())]
    else:
        lines.append("(none)")
    lines += ["", "## Dev metrics", ""]
    dev = facts.dev
    if dev:
        columns = {"base model": dev["base"]} if dev.get("base") else {}
        columns[f"best (step {dev['best_step']})"] = dev["best"]
        columns[f"final (step {dev['final_step']})"] = dev["final"]
        lines += [f"{dev['queries']} dev queries searched against {dev['documents']} of the corpus's "
                  f"{dev['corpus_documents']} documents (cosine, binary relevance). The saved model is the "
                  f"{'best' if dev.get('kept') == 'best' else 'final'} one.", "", *_metrics_table(columns)]
    else:
        lines.append("No dev split with judged queries: nothing was measured during training.")
    lines += ["", TEST_SECTION, "",
              "Measured by the `evaluate` stage, after training, on the test split: see `reports/evaluate.json` "
              "(`finetuned`, `base`, `delta_finetuned_vs_base`, and the paired comparisons with their confidence "
              "intervals)."]
    return "\n".join(lines) + "\n"


def card_with_test_metrics(card: str, finetuned: dict[str, float], base: dict[str, float] | None = None,
                           queries: int | None = None) -> str:
    """The card with its test section replaced by the test metrics (for the stage that measures them).

    Args:
        card: the card text as :func:`render_model_card` wrote it.
        finetuned: the fine-tuned model's test metrics, e.g. reports/evaluate.json's ``finetuned``.
        base: the base model's, for comparison.
        queries: number of test queries.
    """
    head, marker, _ = card.partition(TEST_SECTION)
    if not marker:
        raise ValueError(f"the card has no '{TEST_SECTION}' section")
    columns = {"base model": base, "fine-tuned": finetuned} if base else {"fine-tuned": finetuned}
    intro = f"On {queries} test queries" if queries is not None else "On the test split"
    body = [f"{intro}, searched against the whole corpus (graded relevance; from `reports/evaluate.json`):", "",
            *_metrics_table(columns)]
    return head + marker + "\n\n" + "\n".join(body) + "\n"


def write_model_card(folder: Path, facts: CardFacts) -> Path:
    """Write ``README.md`` into the model folder (call inside the folder's atomic write)."""
    path = Path(folder) / "README.md"
    path.write_text(render_model_card(facts), encoding="utf-8", newline="\n")
    return path
