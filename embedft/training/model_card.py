"""The fine-tuned model's card (``README.md`` in the model folder): a Hugging Face Hub model card.

It opens with YAML front matter, the Hub's metadata: ``library_name``, ``pipeline_tag``, ``tags`` and
``base_model`` as sentence-transformers' own card records them (its ``model_card_data``, filled while training),
and the base model's ``license`` and ``language`` where its own card names them. The template's sections follow:
how to load it, the training data by source, the training, the dev metrics.

The `train` stage writes this card; the test metrics come later, from `evaluate` and `truncate_eval`, and the
model folder is `train`'s DVC output, which no later stage may rewrite. So the card's test section says where
they are, and :func:`card_with_test_metrics` makes the card that is published: the same card with a
``model-index`` of the test metrics in its front matter and the test section filled (metrics, the verdict with
its interval, the Matryoshka and quantization table). `python -m stages.publish` uploads it as README.md beside
the cached model's other files.

The card holds no timestamps, timings, library versions or machine settings, so the same training gives the
same bytes on any machine (sentence-transformers' generated body is not used for that reason: it lists the
trainer's device flags, the training time and the Python version, and samples of the training rows).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from embedft.config import BaseParams, TrainParams

TEST_SECTION = "## Test metrics"
METRIC_ORDER = ("ndcg@10", "mrr@10", "recall@10", "map@100")
TEST_METRIC_ORDER = ("ndcg@10", "mrr@10", "map@100", "recall@1", "recall@10", "recall@100", "precision@10")
NOT_RESULT_KEYS = ("train.report_to",)
"""Params that decide where a run is watched, not what it makes: left out of the card's settings."""
FRONT_MATTER = re.compile(r"\A---\n(?P<yaml>.*?)\n---\n", re.DOTALL)
HUB_FIELDS = ("library_name", "pipeline_tag", "base_model", "license", "language", "datasets", "tags")
"""The front matter's keys, in the order they are written (the model-index comes last, at publishing)."""


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
        hub: the front matter, key -> value (see :func:`hub_metadata`); empty writes none.
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
    hub: dict[str, object] = field(default_factory=dict)

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
    return dict(sorted((key, value) for key, value in changed.items() if key not in NOT_RESULT_KEYS))


def hub_metadata(card_data: object, base_model: str, base_card: dict | None = None) -> dict[str, object]:
    """The card's front matter: sentence-transformers' card data plus what the base model's card says.

    Args:
        card_data: the trained model's ``model_card_data`` (``library_name``, ``pipeline_tag`` and ``tags``,
            which the trainer extends with the loss and the dataset size).
        base_model: `base.model`; named as ``base_model`` when it is a Hub id (``org/name``), not a local folder.
        base_card: the base model's own front matter, if it has a card: its ``license`` and ``language`` are
            kept (a fine-tuned copy is under the base model's licence; `publish.license` can say otherwise).
    """
    base_card = base_card or {}
    values = {
        "library_name": getattr(card_data, "library_name", "sentence-transformers"),
        "pipeline_tag": getattr(card_data, "pipeline_tag", "sentence-similarity"),
        "base_model": base_model if is_hub_id(base_model) else None,
        "license": base_card.get("license"),
        "language": base_card.get("language"),
        "tags": list(dict.fromkeys([*getattr(card_data, "tags", []), "embedft"])),
    }
    return {key: values[key] for key in HUB_FIELDS if values.get(key) not in (None, "", [])}


def is_hub_id(name: str) -> bool:
    """True for a Hub repository id (``org/name``) that is not a folder here."""
    return re.fullmatch(r"[\w.-]+/[\w.-]+", name) is not None and not Path(name).exists()


def split_front_matter(card: str) -> tuple[dict, str]:
    """(front matter, body) of a card; a card without front matter gives ({}, card)."""
    found = FRONT_MATTER.match(card)
    if not found:
        return {}, card
    return yaml.safe_load(found.group("yaml")) or {}, card[found.end():].lstrip("\n")


def with_front_matter(metadata: dict, body: str) -> str:
    """``body`` under YAML front matter (keys in the given order, so the same metadata gives the same bytes)."""
    if not metadata:
        return body
    text = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{text}---\n\n{body}"


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
    """The card as Markdown, under its front matter (``facts.hub``)."""
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
              "intervals). The card `python -m stages.publish` uploads has them here."]
    return with_front_matter(facts.hub, "\n".join(lines) + "\n")


def card_with_test_metrics(card: str, evaluation: dict, truncation: dict | None = None, *, model_name: str,
                           dataset: str, headline: str = "ndcg@10", metadata: dict | None = None) -> str:
    """The card as published: a ``model-index`` of the test metrics in its front matter, and its test section
    replaced by the metrics, the verdict with its interval, and the Matryoshka and quantization table.

    Args:
        card: the card as :func:`render_model_card` wrote it (``models/finetuned/README.md``).
        evaluation: ``reports/evaluate.json`` (``finetuned``, ``base``, ``comparisons``, ``verdict``, ``leakage``,
            ``test_queries``); one without ``finetuned`` (no judged test query) leaves the model-index out.
        truncation: ``reports/truncate.json`` (a width x precision grid per model), or None.
        model_name: the model-index's name (the Hub repository, e.g. ``your-org/your-model``).
        dataset: the test set's name in the model-index (the dataset folder's name).
        headline: the metric the verdict is about.
        metadata: front-matter keys to set or replace (e.g. ``license``, ``datasets``).

    Raises:
        ValueError: the card has no test section.
    """
    front, body = split_front_matter(card)
    head, marker, _ = body.partition(TEST_SECTION)
    if not marker:
        raise ValueError(f"the card has no '{TEST_SECTION}' section")
    front = {**front, **{key: value for key, value in (metadata or {}).items() if value not in (None, "", [])}}
    finetuned = evaluation.get("finetuned")
    if finetuned:
        front["model-index"] = model_index(model_name, dataset, finetuned)
        section = test_section(evaluation, truncation, headline)
    else:
        front.pop("model-index", None)
        section = ["The test split has no judged queries, so nothing was measured after training "
                   f"({evaluation.get('test_queries', 0)} test queries)."]
    return with_front_matter(front, head + marker + "\n\n" + "\n".join(section) + "\n")


def model_index(model_name: str, dataset: str, finetuned: dict[str, float]) -> list[dict]:
    """The Hub's ``model-index``: one retrieval result on the test split, a metric per measure (huggingface_hub's
    :class:`~huggingface_hub.EvalResult` layout; metric types like ``ndcg_at_10``)."""
    from huggingface_hub import EvalResult
    from huggingface_hub.repocard_data import eval_results_to_model_index

    names = [m for m in TEST_METRIC_ORDER if m in finetuned] + sorted(set(finetuned) - set(TEST_METRIC_ORDER))
    results = [EvalResult(task_type="retrieval", task_name="Retrieval", dataset_type=dataset, dataset_name=dataset,
                          dataset_split="test", metric_type=name.replace("@", "_at_"), metric_value=float(finetuned[name]),
                          metric_name=metric_label(name)) for name in names]
    return eval_results_to_model_index(model_name, results)


def metric_label(name: str) -> str:
    """'ndcg@10' -> 'nDCG@10', as the reports print them."""
    measure, _, cutoff = name.partition("@")
    label = {"ndcg": "nDCG", "mrr": "MRR", "map": "MAP", "recall": "Recall", "precision": "P"}.get(measure, measure)
    return f"{label}@{cutoff}" if cutoff else label


def test_section(evaluation: dict, truncation: dict | None, headline: str) -> list[str]:
    """The test section's lines: each system's metrics, the verdict with its interval and leakage, and the table
    of widths and precisions."""
    systems = {label: evaluation[key] for key, label in (("base", "base model"), ("finetuned", "fine-tuned"),
                                                         ("bm25", "BM25"), ("hybrid", "hybrid")) if key in evaluation}
    names = [m for m in TEST_METRIC_ORDER if all(m in values for values in systems.values())]
    lines = [f"On {evaluation.get('test_queries')} test queries, searched against the whole corpus "
             f"({evaluation.get('corpus_documents')} documents; graded relevance; from `reports/evaluate.json`):", "",
             "| system | " + " | ".join(metric_label(m) for m in names) + " |", "|---" * (len(names) + 1) + "|",
             *(f"| {label} | " + " | ".join(f"{values[m]:.4f}" for m in names) + " |" for label, values in systems.items())]
    c = evaluation.get("comparisons", {}).get("finetuned_vs_base")
    if c:
        lines += ["", f"Fine-tuned minus base, {metric_label(headline)}: **{c['difference']:+.4f}** (paired bootstrap 95% CI "
                  f"{c['ci_low']:+.4f} .. {c['ci_high']:+.4f}, p = {c['p_value']:.4f}; {c['wins']} queries won, "
                  f"{c['ties']} tied, {c['losses']} lost). Verdict: **{evaluation.get('verdict')}**."]
    leakage = evaluation.get("leakage")
    if leakage:
        lines += ["", f"Test queries found in the training pairs: {leakage['exact']} verbatim, {leakage['normalised']} after "
                  f"normalisation, {leakage['near_duplicate']} as near-duplicates"
                  + ("; the gain is large enough to suspect a leak." if evaluation.get("suspected_leak") else ".")]
    if truncation and truncation.get("finetuned"):
        lines += ["", "### Smaller and quantized embeddings", "", *width_table(truncation, headline)]
    return lines


def width_table(truncation: dict, headline: str) -> list[str]:
    """The headline metric per width (rows) and precision (columns) for each model, with the share kept of the same
    model's full-width float32 score, and the bytes each vector takes (``reports/truncate.json``)."""
    dims = sorted({int(d) for model in ("base", "finetuned") for d in truncation.get(model, {})}, reverse=True)
    precisions = list(next(iter(truncation["finetuned"].values())))
    lines = [f"{metric_label(headline)} by width (`SentenceTransformer(path, truncate_dim=...)`) and precision; in brackets "
             "the share of the same model's full-width float32 score (from `reports/truncate.json`):", "",
             "| model | " + " | ".join(map(str, dims)) + " |", "|---" * (len(dims) + 1) + "|"]
    for model, label in (("base", "base"), ("finetuned", "fine-tuned")):
        for precision in precisions:
            cells = [truncation[model].get(str(d), {}).get(precision) for d in dims]
            lines.append(f"| {label} {precision} | " + " | ".join(
                f"{cell[headline]:.4f} ({cell[f'retention_{headline}_pct']:.0f}%)" if cell else "-" for cell in cells) + " |")
    sizes = [" / ".join(str(truncation["finetuned"][str(d)][p]["bytes_per_vector"]) for p in precisions)
             if str(d) in truncation["finetuned"] else "-" for d in dims]
    lines.append(f"| bytes per vector ({' / '.join(precisions)}) | " + " | ".join(sizes) + " |")
    return lines


def write_model_card(folder: Path, facts: CardFacts) -> Path:
    """Write ``README.md`` into the model folder (call inside the folder's atomic write)."""
    path = Path(folder) / "README.md"
    path.write_text(render_model_card(facts), encoding="utf-8", newline="\n")
    return path
