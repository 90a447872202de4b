"""LLM query generation: wall time of the template's path against a plain loop of `openai` calls, and of a re-run
served from the reply cache; plus the cost of the round-trip filter on the queries written.

The endpoint is the test chat-completions server on 127.0.0.1 (embedft.testing.chat_server), answering every
request after a fixed delay that stands in for an LLM's latency; no real model is called, so this measures the
client side only: concurrency (the machine setting `llm_concurrency`), caching, parsing. The round-trip filter
uses the real base model and the stored corpus embeddings, so run `dvc repro embed_corpus` first; it runs with
this machine's settings (machine.yaml, EMBEDFT_<KEY> variables).

Usage:
    python bench/llm_synthesis.py --passages 200 --latency 0.2 --concurrency 1 4 8
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the server waits before each reply")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "llm_synthesis.json")
    args = parser.parse_args()

    import openai

    from embedft.config import LlmParams, load_machine, load_params
    from embedft.core import read_corpus
    from embedft.pairs.llm_queries import llm_queries, messages, user_template
    from embedft.pairs.synthesis import generation_passages, query_pairs
    from embedft.testing.chat_server import Action, ChatServer

    params = load_params(ROOT / "params.yaml")
    machine = load_machine()
    corpus = read_corpus(ROOT / "data" / "corpus" / "corpus.jsonl")
    passages = generation_passages(corpus, args.passages, params.synthesize.quality.min_positive_chars, params.base.seed, 4000)
    server = ChatServer(lambda number, passage: Action(delay=args.latency))
    os.environ["BENCH_LLM_KEY"] = "bench-key"
    results: dict = {"passages": len(passages), "latency_s": args.latency, "machine": os.uname().nodename,
                     "cpus": os.cpu_count(), "date": datetime.date.today().isoformat()}
    try:
        settings = LlmParams(enabled=True, base_url=server.url, model="bench", api_key_env="BENCH_LLM_KEY")
        template = user_template(settings)
        client = openai.OpenAI(base_url=server.url, api_key="bench-key")
        start = time.perf_counter()
        for text in passages.values():  # the plain recipe: one request after another, no cache
            client.chat.completions.create(model="bench", messages=messages(text, template, settings))
        results["plain_sequential_s"] = round(time.perf_counter() - start, 3)
        with tempfile.TemporaryDirectory() as scratch:
            for concurrency in args.concurrency:
                cache = Path(scratch) / f"cache-{concurrency}.sqlite"
                run_machine = machine.model_copy(update={"llm_concurrency": concurrency})
                start = time.perf_counter()
                queries, counts = llm_queries(passages, settings, run_machine, cache, progress=False)
                fresh = time.perf_counter() - start
                start = time.perf_counter()
                llm_queries(passages, settings, run_machine, cache, progress=False)
                cached = time.perf_counter() - start
                results[f"concurrency_{concurrency}"] = {
                    "fresh_s": round(fresh, 3), "cached_rerun_s": round(cached, 3),
                    "speedup_vs_plain": round(results["plain_sequential_s"] / fresh, 2), "queries": counts["queries"],
                }
    finally:
        server.close()

    from embedft.core.artifacts import BASE_EMBEDDINGS_DIR
    from embedft.encoding import encode, load_embeddings, load_model_with
    from embedft.pairs.filters import round_trip_filter

    base = params.base
    pairs = query_pairs({d: [q for _, q in qs] for d, qs in queries.items()}, corpus, "llm")
    start = time.perf_counter()
    stored = load_embeddings(ROOT / BASE_EMBEDDINGS_DIR, corpus)
    model = load_model_with(base, machine)
    kept, dropped = round_trip_filter(pairs, ["llm"], params.synthesize.quality.round_trip_k,
                                      lambda texts: encode(model, texts, base.query_prompt, machine.encode_batch_size, progress=False),
                                      stored.vectors, stored.doc_ids, machine.search_chunk_size)
    results["round_trip"] = {"queries": len(pairs), "seconds": round(time.perf_counter() - start, 3), "kept": len(kept),
                             "dropped": len(dropped), "k": params.synthesize.quality.round_trip_k}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(json.dumps(results, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
