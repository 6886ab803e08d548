"""Benchmark scoring for the perturbation study (figure 4b): accuracy and gold-answer NLL.

Benchmarks (each a few-shot prompt per problem, "<question>\\nA: <answer>" style, one answer line):
- `arithmetic`: built-in, seeded additions a + b (operands in [low, high], default 1..20),
  "Q: 13 + 5 = ?\\nA: 18"; a prediction is correct when the first integer on the first generated
  line equals the sum.
- `math`: MATH-style problems (fields `problem`, `solution`) from a local jsonl / parquet file or
  a Hugging Face dataset already in the local cache (never downloaded). The gold answer is the
  content of the last \\boxed{...} (or \\fbox{...}) in the solution, found by balanced-brace
  parsing. Prompt "Problem: <problem>\\nAnswer:"; the first `n_shots` problems of the file are
  the shots (answered with their gold), the next `n_problems` are scored. Correctness is decided by
  math-verify (`verify(parse(gold), parse(first generated line))`), no hand-written normalisation.

Scores (`score_benchmark`): accuracy of greedy generation (batched, left padding, at most
`max_new_tokens`, cut at the first newline), and under teacher forcing the NLL of the gold
continuation " <answer>" after the prompt: `gold_nll_nats` = mean over problems of
-log P(answer | prompt) (nats, summed over the answer's tokens), `gold_nll_per_token_nats` =
all answer tokens' NLL / their number. Prompt and answer are tokenised separately and joined, so
the answer's tokens are the tokenizer's own encoding of " <answer>".
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from scalelens.batching import left_pad, length_sorted_batches, logits_tail
from scalelens.errors import ScalelensError
from scalelens.models.loading import LoadedModel

log = logging.getLogger(__name__)

BENCHMARKS = ("arithmetic", "math")


class BenchmarkError(ScalelensError):
    pass


@dataclass(frozen=True)
class BenchmarkItems:
    """Prompts to complete and their gold answers; the continuation scored is ' ' + gold."""

    name: str
    prompts: tuple[str, ...]
    golds: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.prompts)


@dataclass(frozen=True)
class BenchmarkScore:
    """Accuracy and teacher-forced gold NLL over the items, with per-problem detail."""

    benchmark: str
    n_problems: int
    accuracy: float
    n_correct: int
    gold_nll_nats: float  # mean over problems of -log P(gold | prompt)
    gold_nll_per_token_nats: float
    correct: np.ndarray  # bool [n]
    nll_nats: np.ndarray  # float64 [n], summed over the gold's tokens
    n_gold_tokens: np.ndarray  # int64 [n]
    predictions: tuple[str, ...]  # first generated line per problem
    n_forward_passes: int  # teacher-forcing passes + generate calls' steps
    seconds: float


# ----------------------------------------------------------------------------- arithmetic


def arithmetic_items(n_problems: int, n_shots: int = 3, seed: int = 0,
                     low: int = 1, high: int = 20) -> BenchmarkItems:
    """Seeded a + b problems (a, b uniform in [low, high]), each after the same n_shots examples.

    Shots and problems are distinct pairs drawn from one generator, so a seed fixes everything.
    The default range 1..20 is one the small default models partly solve.
    """
    if not 0 <= low <= high:
        raise ValueError(f"need 0 <= low <= high for the operand range, got {low}, {high}")
    if n_problems < 1 or n_shots < 0:
        raise ValueError(f"need n_problems >= 1 and n_shots >= 0, got {n_problems}, {n_shots}")
    n_pairs = (high - low + 1) ** 2
    if n_problems + n_shots > n_pairs:
        raise ValueError(f"{n_problems + n_shots} problems asked, only {n_pairs} distinct pairs")
    rng = np.random.default_rng(seed)
    flat = rng.choice(n_pairs, size=n_problems + n_shots, replace=False)
    a, b = low + flat // (high - low + 1), low + flat % (high - low + 1)
    shots = "".join(f"Q: {x} + {y} = ?\nA: {x + y}\n" for x, y in zip(a[:n_shots], b[:n_shots]))
    prompts = tuple(f"{shots}Q: {x} + {y} = ?\nA:" for x, y in zip(a[n_shots:], b[n_shots:]))
    golds = tuple(str(x + y) for x, y in zip(a[n_shots:], b[n_shots:]))
    return BenchmarkItems("arithmetic", prompts, golds)


_INT = re.compile(r"-?\d+")


def arithmetic_correct(prediction: str, gold: str) -> bool:
    """The first integer of the prediction equals the gold integer."""
    m = _INT.search(prediction)
    return m is not None and int(m.group()) == int(gold)


# ----------------------------------------------------------------------------- math


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} / \\fbox{...} in text (nested braces balanced), or None."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    for start in reversed(starts):
        depth, i = 1, start
        while i < len(text):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i]
            i += 1
    return None


def read_problem_file(path: str | Path) -> list[dict]:
    """Rows of a jsonl or parquet file (each with at least `problem` and `solution`)."""
    path = Path(path)
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise BenchmarkError(f"{path}:{n}: not valid json ({e})") from None
        return rows
    if path.suffix == ".parquet":
        import pandas as pd

        return pd.read_parquet(path).to_dict(orient="records")
    raise BenchmarkError(f"{path}: unsupported problem file; use .jsonl or .parquet")


def cached_dataset_rows(name: str, split: str = "test", cache_dir: str | Path | None = None
                        ) -> list[dict]:
    """Rows of split `split` of a Hugging Face dataset that is already in the local hub cache.

    Looks only at the cache (local_files_only): the snapshot's parquet / jsonl files whose path
    names the split are read. Nothing is ever downloaded.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        root = Path(snapshot_download(name, repo_type="dataset", local_files_only=True,
                                      cache_dir=cache_dir))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        raise BenchmarkError(
            f"math_path {name!r} is neither a local .jsonl/.parquet file nor a dataset in the "
            f"local Hugging Face cache; on a machine with network run "
            f"`hf download --repo-type dataset {name}`, or export the problems "
            f"to a jsonl file with `problem` and `solution` fields") from None
    files = sorted(p for p in root.rglob("*") if p.suffix in (".parquet", ".jsonl")
                   and split in p.relative_to(root).as_posix())
    if not files:
        raise BenchmarkError(f"dataset {name!r} is cached at {root} but has no .parquet/.jsonl "
                             f"file for split {split!r}")
    return [row for f in files for row in read_problem_file(f)]


def load_math_rows(source: str, split: str = "test", cache_dir: str | Path | None = None
                   ) -> list[dict]:
    """Problem rows from a local file, else from a cached Hugging Face dataset of that name."""
    if not source:
        raise BenchmarkError("perturb.benchmark is 'math' but perturb.math_path is empty; give a "
                             ".jsonl/.parquet file with problem and solution fields")
    path = Path(source)
    rows = read_problem_file(path) if path.is_file() else cached_dataset_rows(source, split,
                                                                              cache_dir)
    for i, row in enumerate(rows):
        if "problem" not in row or "solution" not in row:
            raise BenchmarkError(f"{source}: row {i} lacks a problem or solution field "
                                 f"(has {', '.join(map(str, row)) or 'nothing'})")
    return rows


def math_items(rows: Sequence[dict], n_problems: int, n_shots: int = 2) -> BenchmarkItems:
    """Few-shot "Problem: ...\\nAnswer: ..." prompts; rows without a \\boxed answer are skipped."""
    usable = [(r["problem"].strip(), last_boxed(r["solution"])) for r in rows]
    usable = [(p, g.strip()) for p, g in usable if g is not None and g.strip()]
    if len(usable) < n_shots + 1:
        raise BenchmarkError(f"only {len(usable)} problems with a \\boxed answer; need at least "
                             f"n_shots + 1 = {n_shots + 1}")
    shots = "".join(f"Problem: {p}\nAnswer: {g}\n\n" for p, g in usable[:n_shots])
    chosen = usable[n_shots:n_shots + n_problems]
    return BenchmarkItems("math", tuple(f"{shots}Problem: {p}\nAnswer:" for p, _ in chosen),
                          tuple(g for _, g in chosen))


def math_correct(prediction: str, gold: str) -> bool:
    """math-verify's judgement of the prediction against the gold (boxed) answer."""
    from math_verify import parse, verify

    target = parse(prediction)
    if not target:
        return False
    return bool(verify(parse(f"$\\boxed{{{gold}}}$"), target))


def is_correct(benchmark: str, prediction: str, gold: str) -> bool:
    if benchmark == "arithmetic":
        return arithmetic_correct(prediction, gold)
    if benchmark == "math":
        return math_correct(prediction, gold)
    raise ValueError(f"unknown benchmark {benchmark!r}; use one of {', '.join(BENCHMARKS)}")


# ----------------------------------------------------------------------------- scoring


def _encode(lm: LoadedModel, items: BenchmarkItems) -> tuple[list[list[int]], list[list[int]]]:
    tok = lm.tokenizer
    prompts = [list(ids) for ids in tok(list(items.prompts))["input_ids"]]
    answers = [list(ids) for ids in tok([" " + g for g in items.golds],
                                        add_special_tokens=False)["input_ids"]]
    if any(len(a) == 0 for a in answers):
        raise BenchmarkError("a gold answer encodes to no tokens")
    return prompts, answers


def gold_nll(lm: LoadedModel, prompts: Sequence[Sequence[int]],
             answers: Sequence[Sequence[int]], batch_size: int) -> tuple[np.ndarray, int]:
    """-log P(answer | prompt) in nats per problem (teacher forcing), and the passes used."""
    nll = np.zeros(len(prompts), dtype=np.float64)
    n_passes = 0
    seqs = [list(p) + list(a) for p, a in zip(prompts, answers)]
    for idx in length_sorted_batches([len(s) for s in seqs], batch_size):
        batch = left_pad([seqs[i] for i in idx], lm.tokenizer.pad_token_id, lm.device)
        keep = max(len(answers[i]) for i in idx) + 1
        logp = torch.log_softmax(logits_tail(lm, batch, keep).double(), dim=-1)  # right-aligned
        n_passes += 1
        for row, i in enumerate(idx):
            a = torch.tensor(answers[i], device=logp.device)
            # logits at position t predict token t+1: the answer's tokens are the last len(a)
            # tokens, predicted by the len(a) positions before the last one
            pred = logp[row, keep - 1 - len(a):keep - 1]
            nll[i] = -float(pred.gather(1, a[:, None]).sum())
    return nll, n_passes


class _StopAtNewline(StoppingCriteria):
    """Per row: stop once the generated text contains a newline."""

    def __init__(self, tokenizer, n_prompt: int):
        self.tokenizer, self.n_prompt = tokenizer, n_prompt
        self.calls = 0

    def __call__(self, input_ids, scores, **kwargs):
        self.calls += 1
        texts = self.tokenizer.batch_decode(input_ids[:, self.n_prompt:], skip_special_tokens=True)
        return torch.tensor(["\n" in t for t in texts], dtype=torch.bool, device=input_ids.device)


def greedy_answers(lm: LoadedModel, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                   batch_size: int) -> tuple[list[str], int]:
    """First generated line per prompt (greedy, batched with left padding), and the steps run."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    out_texts = [""] * len(prompts)
    steps = 0
    pad = lm.tokenizer.pad_token_id
    for idx in length_sorted_batches([len(p) for p in prompts], batch_size):
        batch = left_pad([prompts[i] for i in idx], pad, lm.device)
        n_prompt = batch["input_ids"].shape[1]
        stop = _StopAtNewline(lm.tokenizer, n_prompt)
        with torch.inference_mode():
            gen = lm.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                    temperature=None, top_p=None, top_k=None, pad_token_id=pad,
                                    stopping_criteria=StoppingCriteriaList([stop]))
        steps += stop.calls
        texts = lm.tokenizer.batch_decode(gen[:, n_prompt:], skip_special_tokens=True)
        for row, i in enumerate(idx):
            out_texts[i] = texts[row].split("\n", 1)[0].strip()
    return out_texts, steps


def score_benchmark(lm: LoadedModel, items: BenchmarkItems, max_new_tokens: int,
                    batch_size: int = 16) -> BenchmarkScore:
    """Greedy accuracy and teacher-forced gold NLL of the model as it is now (e.g. perturbed)."""
    t0 = time.perf_counter()
    prompts, answers = _encode(lm, items)
    nll, nll_passes = gold_nll(lm, prompts, answers, batch_size)
    preds, steps = greedy_answers(lm, prompts, max_new_tokens, batch_size)
    correct = np.array([is_correct(items.name, p, g) for p, g in zip(preds, items.golds)])
    n_tok = np.array([len(a) for a in answers], dtype=np.int64)
    return BenchmarkScore(
        benchmark=items.name, n_problems=len(items), accuracy=float(correct.mean()),
        n_correct=int(correct.sum()), gold_nll_nats=float(nll.mean()),
        gold_nll_per_token_nats=float(nll.sum() / n_tok.sum()), correct=correct, nll_nats=nll,
        n_gold_tokens=n_tok, predictions=tuple(preds), n_forward_passes=nll_passes + steps,
        seconds=time.perf_counter() - t0)
