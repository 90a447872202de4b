"""Queries generated locally by a Hugging Face seq2seq model (doc2query-style T5): batched, sampled with a seed.

Runs on the GPU when there is one (the machine setting ``device: auto``). The same passages, seed, batch size and device give
the same queries.
"""

from __future__ import annotations

from embedft.config import LocalGeneratorParams
from embedft.core import PipelineError, clean_query


def generate_local_queries(
    passages: dict[str, str], settings: LocalGeneratorParams, seed: int, device: str = "auto", progress: bool = True,
    *, trust_remote_code: bool = False, on_missing_gpu: str = "error",
) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Sample ``queries_per_passage`` queries for each passage.

    Args:
        passages: passage id -> text.
        settings: the model (name or folder), sampling and batching settings.
        seed: batch i is sampled with seed + i.
        device: 'auto' (CUDA, then MPS, then CPU) or a torch device string.
        progress: show a progress bar.
        trust_remote_code: run code shipped with the model (``base.trust_remote_code``).
        on_missing_gpu: 'error' or 'cpu' when ``device`` names a GPU this machine lacks (the machine's ``on_missing_gpu``).

    Returns:
        the distinct non-empty queries per passage id, and counts for the metrics.

    Raises:
        PipelineError: the model cannot be loaded.
    """
    # Imported here: torch and transformers take seconds to load, and most runs do not generate.
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from embedft.encoding import pick_device

    chosen = pick_device(device, on_missing_gpu)
    try:
        tokenizer = AutoTokenizer.from_pretrained(settings.model, trust_remote_code=trust_remote_code)
        model = AutoModelForSeq2SeqLM.from_pretrained(settings.model, use_safetensors=True, trust_remote_code=trust_remote_code)
        model = model.to(chosen).eval()
    except (OSError, ValueError) as error:
        if "safetensors" in str(error):
            raise PipelineError(
                f"synthesize.local_generator.model: '{settings.model}' has no safetensors weights; only safetensors are "
                "loaded, because pickled weights can run code. Convert it once (from_pretrained, then "
                "save_pretrained(folder, safe_serialization=True)) and point the key at that folder") from None
        raise PipelineError(f"synthesize.local_generator.model: could not load the seq2seq model '{settings.model}': {error}") from None
    ids = sorted(passages)
    per_passage = settings.queries_per_passage
    queries: dict[str, list[str]] = {}
    counts = {"passages": len(ids), "queries": 0, "empty_or_repeated": 0, "gpu": int(chosen.startswith("cuda"))}
    starts = range(0, len(ids), settings.batch_size)
    for number, start in enumerate(tqdm(starts, desc="synthesize: generating queries", unit="batch", disable=not progress)):
        batch = ids[start : start + settings.batch_size]
        encoded = tokenizer([settings.input_prefix + passages[i] for i in batch], max_length=settings.max_input_tokens,
                            truncation=True, padding=True, return_tensors="pt")
        torch.manual_seed(seed + number)
        with torch.inference_mode():
            output = model.generate(
                input_ids=encoded["input_ids"].to(chosen), attention_mask=encoded["attention_mask"].to(chosen), do_sample=True,
                top_k=settings.top_k, top_p=settings.top_p, temperature=settings.temperature,
                max_new_tokens=settings.max_new_tokens, num_return_sequences=per_passage,
            )
        texts = tokenizer.batch_decode(output, skip_special_tokens=True)
        for row, doc_id in enumerate(batch):
            sampled = [clean_query(text) for text in texts[row * per_passage : (row + 1) * per_passage]]
            distinct = list(dict.fromkeys(text for text in sampled if text))
            counts["empty_or_repeated"] += per_passage - len(distinct)
            counts["queries"] += len(distinct)
            if distinct:
                queries[doc_id] = distinct
    return queries, counts
