"""Neuron-level attribution graphs (scalelens.attribution) on the default models; a markdown table.

Run: .venv/bin/python bench/bench_attribution.py [--models ...] [--tokens 20] [--threads 2]
     [--repeats 1] [--max-feature-nodes N] [--batch-size B] [--row-top-k K]

Per model: the longest word prefix of a fixed sentence with at most `--tokens` tokens, one
warm-up graph on a short prompt, then `--repeats` timed graphs with `AttributionSettings()` (or
the overrides given); the fastest is shown (the graphs are identical; on a shared machine the
fastest run is the one least disturbed).

Columns: tokens, logit targets, rows computed (logit + unit rows), batched backward passes,
expanded units, kept nodes / units / edges, wall seconds (whole call and the rows part), CPU
seconds of this process, peak resident memory, completeness (max relative error over every row),
influence kept, faithfulness of the graph and of the random baseline (zero ablation), share of
each row's |mass| stored.

Goal: SmolLM2-135M, a 20-token prompt, under 10 s on 2 idle cores. Wall times scale with load:
the load average before and after is printed (on a shared machine compare CPU seconds / threads).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import warnings

import torch

from scalelens.attribution import AttributionSettings, attribute_prompt
from scalelens.models import DEFAULT_LADDER, load_model

SENTENCE = ("The capital of France is Paris, and the capital of Germany is the city of Berlin, "
            "which lies on the river Spree in the north of the country")
GOAL_MODEL, GOAL_SECONDS = "smollm2-135m", 10.0


def prompt_for(lm, n_tokens: int) -> tuple[str, int]:
    """The longest word prefix of SENTENCE with at most n_tokens tokens (and its length)."""
    words = SENTENCE.split(" ")
    best = (words[0], len(lm.tokenizer(words[0])["input_ids"]))
    for end in range(2, len(words) + 1):
        text = " ".join(words[:end])
        length = len(lm.tokenizer(text)["input_ids"])
        if length > n_tokens:
            break
        best = (text, length)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_LADDER))
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--max-feature-nodes", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--row-top-k", type=int, default=None)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import transformers

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    overrides = {name: value for name, value in (
        ("max_feature_nodes", args.max_feature_nodes), ("batch_size", args.batch_size),
        ("row_top_k", args.row_top_k)) if value is not None}
    settings = AttributionSettings(**overrides)
    load_before = os.getloadavg()
    rows = []
    for key in args.models:
        lm = load_model(key)
        text, n_tokens = prompt_for(lm, args.tokens)
        attribute_prompt(lm, "Hello", AttributionSettings(max_feature_nodes=8, batch_size=8))
        runs = []
        for _ in range(max(args.repeats, 1)):
            cpu = time.process_time()
            result = attribute_prompt(lm, text, settings)
            runs.append((result.quality.seconds, time.process_time() - cpu, result.quality))
        _, cpu, quality = min(runs, key=lambda run: run[0])
        rows.append((key, n_tokens, quality, cpu))
        del lm, result
    load_after = os.getloadavg()

    print(f"\nsettings: {settings.to_dict()}")
    print(f"torch threads {args.threads}; load average (1/5/15 min) before "
          f"{load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}, after "
          f"{load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f}\n")
    print("| model | tokens | logits | rows | passes | expanded | nodes | units kept | edges | "
          "wall s | rows s | CPU s | peak MB | completeness | influence kept | faithfulness | "
          "random | row mass stored |")
    print("|---|" + "---:|" * 18)
    for key, n_tokens, q, cpu in rows:
        print(f"| {key} | {n_tokens} | {q.n_logits} | {q.n_rows} | {q.n_passes} | "
              f"{q.n_units_expanded} | {q.n_nodes} | {q.n_units_kept} | {q.n_edges} | "
              f"{q.seconds:.1f} | {q.seconds_rows:.1f} | {cpu:.1f} | {q.peak_memory_mb:.0f} | "
              f"{q.completeness_max_rel_error:.1e} | {q.influence_kept:.3f} | "
              f"{q.faithfulness:.3f} | {q.faithfulness_random:.3f} | {q.row_mass_stored:.3f} |")
    for key, _, q, _ in rows:
        if key == GOAL_MODEL:
            verdict = "met" if q.seconds < GOAL_SECONDS else "NOT met (see the load average)"
            print(f"\ngoal: {GOAL_MODEL} graph under {GOAL_SECONDS:.0f} s: {q.seconds:.1f} s, "
                  f"{verdict}")


if __name__ == "__main__":
    main()
