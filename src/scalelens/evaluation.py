"""Benchmark scoring for the perturbation study (figure 4b): accuracy and gold-answer NLL.

Benchmarks (each a few-shot prompt per problem, the answer on the rest of the problem's line):
- `arithmetic`: built-in, seeded additions a + b (operands in [low, high]) after n_shots solved
  ones, as equations "13 + 5 = 18" (default; the problem is "13 + 5 =") or as "Q: 13 + 5 = ?\\nA:
  18"; a prediction is correct when the first integer on the first generated line equals the sum.
- `math`: MATH-style problems from a .jsonl / .json / .parquet / .arrow file, a folder of them,
  or a Hugging Face dataset already in a local cache (never downloaded): HuggingFaceH4/MATH-500
  (gold = its `answer` field) and EleutherAI/hendrycks_math (gold = the content of the last
  \\boxed{...} / \\fbox{...} of `solution`, by balanced-brace parsing). Rows are shuffled with
  the problem seed; prompt "Problem: <problem>\\nAnswer:" after n_shots solved examples.
  Correctness is decided by math-verify (`verify(parse(gold boxed), parse(first generated
  line))`), no hand-written normalisation.

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
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from scalelens.batching import (
    last_logits_only,
    left_pad,
    length_sorted_batches,
    logits_tail,
    position_ids_from_mask,
)
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
    n_prompt_tokens: np.ndarray  # int64 [n]
    n_shared_prefix_tokens: int  # leading prompt tokens run once for all problems
    predictions: tuple[str, ...]  # first generated line per problem
    n_forward_passes: int  # teacher-forcing passes + generate calls' steps
    seconds: float


# ----------------------------------------------------------------------------- arithmetic


ARITHMETIC_FORMATS = ("equation", "qa")


def arithmetic_items(n_problems: int, n_shots: int = 3, seed: int = 0, low: int = 1,
                     high: int = 20, fmt: str = "equation") -> BenchmarkItems:
    """Seeded a + b problems (a, b uniform in [low, high]), each after the same n_shots examples.

    fmt `equation`: "13 + 5 = 18" lines, the problem "13 + 5 ="; fmt `qa`: "Q: 13 + 5 = ?\nA: 18",
    the problem "Q: 13 + 5 = ?\nA:". Shots and problems are distinct pairs drawn from one
    generator, so a seed fixes everything (and the same seed gives the same pairs in both formats).
    """
    if fmt not in ARITHMETIC_FORMATS:
        raise ValueError(f"arithmetic format {fmt!r} is not one of {', '.join(ARITHMETIC_FORMATS)}")
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
    if fmt == "equation":
        question, solved = "{} + {} =", "{} + {} = {}\n"
    else:
        question, solved = "Q: {} + {} = ?\nA:", "Q: {} + {} = ?\nA: {}\n"
    shots = "".join(solved.format(x, y, x + y) for x, y in zip(a[:n_shots], b[:n_shots]))
    prompts = tuple(shots + question.format(x, y) for x, y in zip(a[n_shots:], b[n_shots:]))
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


MATH_SUFFIXES = (".jsonl", ".json", ".parquet", ".arrow")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def _json_rows(path: Path) -> list[dict]:
    """A .json file: a list of objects, or JSON Lines (what `Dataset.to_json` writes)."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return _jsonl_rows(path, text)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise BenchmarkError(f"{path}: expected a list of objects (one per problem) or JSON "
                             f"Lines, got {type(data).__name__}")
    return data


def _jsonl_rows(path: Path, text: str | None = None) -> list[dict]:
    rows = []
    text = path.read_text(encoding="utf-8") if text is None else text
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise BenchmarkError(f"{path}:{n}: not valid json ({e})") from None
            if not isinstance(row, dict):
                raise BenchmarkError(f"{path}:{n}: expected an object per line")
            rows.append(row)
    return rows


def _arrow_rows(path: Path) -> list[dict]:
    """An Arrow IPC file or stream (the `datasets` cache writes streams)."""
    import pyarrow as pa

    try:
        with pa.memory_map(str(path)) as src:
            try:
                table = pa.ipc.open_stream(src).read_all()
            except pa.ArrowInvalid:
                src.seek(0)
                table = pa.ipc.open_file(src).read_all()
    except pa.ArrowInvalid as e:
        raise BenchmarkError(f"{path}: not an Arrow file ({e})") from None
    return table.to_pylist()


def read_problem_file(path: str | Path) -> list[dict]:
    """Rows of a .jsonl / .json / .parquet / .arrow file of problems."""
    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"{path}: no such file")
    if path.suffix == ".jsonl":
        return _jsonl_rows(path)
    if path.suffix == ".json":
        return _json_rows(path)
    if path.suffix == ".parquet":
        import pandas as pd

        return pd.read_parquet(path).to_dict(orient="records")
    if path.suffix == ".arrow":
        return _arrow_rows(path)
    raise BenchmarkError(f"{path}: unsupported problem file; use {', '.join(MATH_SUFFIXES)}")


def _names_split(rel: str, split: str) -> bool:
    """The relative path names the split as a word: test.jsonl, data/test-0000-of-0001.parquet,
    algebra/test-00000-of-00001.parquet, hendrycks_math-test.arrow, test/part0.parquet."""
    return re.search(rf"(^|[/_.-]){re.escape(split)}([/_.-]|$)", rel) is not None


def folder_rows(root: str | Path, split: str = "test", config: str = "",
                source: str | None = None) -> list[dict]:
    """Rows of every problem file under root whose path names `split` (all files when none
    names a split), restricted to the config sub-folder `config` when given; sorted by path.

    Layouts: MATH-500 (test.jsonl at the root), EleutherAI/hendrycks_math (one folder per config,
    <config>/test-00000-of-00001.parquet), a `datasets` cache folder (<config>/<version>/<hash>/
    <name>-test.arrow; only the newest hash folder of each config is read)."""
    root = Path(root)
    source = source or str(root)
    files = sorted(p for p in root.rglob("*") if p.suffix in MATH_SUFFIXES and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise BenchmarkError(f"math_path {source}: no {'/'.join(MATH_SUFFIXES)} file in {root}")
    rel = {p: p.relative_to(root).as_posix() for p in files}
    if config:
        configs = sorted({r.split("/", 1)[0] for p, r in rel.items() if "/" in r})
        files = [p for p in files if rel[p].split("/", 1)[0] == config]
        if not files:
            raise BenchmarkError(f"math_path {source}: no config {config!r} (sub-folder) in "
                                 f"{root}; found {', '.join(configs) or 'no sub-folders'}")
    named = [p for p in files if _names_split(rel[p], split)]
    if not named and any(_names_split(rel[p], s) for p in files
                         for s in ("train", "test", "validation")):
        raise BenchmarkError(f"math_path {source}: no file for split {split!r} in {root} "
                             f"(files: {', '.join(rel[p] for p in files[:6])})")
    files = named or files
    arrow = [p for p in files if p.suffix == ".arrow"]
    if arrow:  # a datasets cache: keep the newest build folder per config
        newest: dict[str, Path] = {}
        for p in arrow:
            key = rel[p].split("/", 1)[0]
            if key not in newest or p.parent.stat().st_mtime > newest[key].stat().st_mtime:
                newest[key] = p.parent
        files = [p for p in files if p.suffix != ".arrow" or p.parent in newest.values()]
    return [row for f in files for row in read_problem_file(f)]


def _datasets_cache_dir(name: str, datasets_cache: str | Path | None) -> Path | None:
    """The `datasets` library's own cache folder of a hub dataset (org___name), if present."""
    if datasets_cache is None:
        datasets_cache = os.environ.get("HF_DATASETS_CACHE") or (
            Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "datasets")
    folder = Path(datasets_cache) / name.replace("/", "___")
    return folder if folder.is_dir() else None


def cached_dataset_rows(name: str, split: str = "test", config: str = "",
                        cache_dir: str | Path | None = None,
                        datasets_cache: str | Path | None = None) -> list[dict]:
    """Rows of a Hugging Face dataset already on this machine; nothing is ever downloaded.

    Looked for first in the hub cache (`hf download`, and `load_dataset`, which keeps the hub's
    parquet/jsonl files there), with local_files_only; then in the `datasets` library's arrow
    cache (HF_DATASETS_CACHE). Files are chosen as in `folder_rows`."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        root = Path(snapshot_download(name, repo_type="dataset", local_files_only=True,
                                      cache_dir=cache_dir))
    except (LocalEntryNotFoundError, HFValidationError, FileNotFoundError, OSError):
        root = _datasets_cache_dir(name, datasets_cache)
    if root is None:
        raise BenchmarkError(
            f"math_path {name!r}: no such file or folder, and no dataset of that name in the "
            f"local Hugging Face cache; on a machine with network run `hf download --repo-type "
            f"dataset {name}` (or give a .jsonl/.json/.parquet file)")
    return folder_rows(root, split, config, source=name)


def load_math_rows(source: str, split: str = "test", config: str = "",
                   cache_dir: str | Path | None = None,
                   datasets_cache: str | Path | None = None) -> list[dict]:
    """Problem rows from a file, a folder of files, or a cached Hugging Face dataset.

    A source that exists is read as a file or a folder; one that does not is looked up as a
    dataset name (org/name) in the local caches when it has that form, else it is a missing
    file (one line naming it). Each row needs `problem` and a gold: `answer` (MATH-500) or a
    `solution` with a \\boxed{} answer (MATH, hendrycks_math)."""
    if not source:
        raise BenchmarkError("perturb.benchmark is 'math' but perturb.math_path is empty; give a "
                             ".jsonl/.json/.parquet file with problem and solution fields")
    path = Path(source).expanduser()
    if path.is_file():
        rows = read_problem_file(path)
    elif path.is_dir():
        rows = folder_rows(path, split, config)
    elif _HUB_ID.fullmatch(source) and path.suffix not in MATH_SUFFIXES:
        rows = cached_dataset_rows(source, split, config, cache_dir, datasets_cache)
    else:
        raise BenchmarkError(f"math_path {source}: no such file or folder ({path.absolute()})")
    if not rows:
        raise BenchmarkError(f"math_path {source}: no problems in it")
    for i, row in enumerate(rows):
        if "problem" not in row or not ("solution" in row or "answer" in row):
            raise BenchmarkError(f"math_path {source}: row {i} lacks a problem, or both an answer "
                                 f"and a solution (has {', '.join(map(str, row)) or 'nothing'})")
    return rows


def math_gold(row: dict) -> str | None:
    """The gold answer of a row: its `answer` field (MATH-500) when non-empty, else the last
    \\boxed{} of its `solution` (MATH / hendrycks_math); None when neither gives one."""
    answer = row.get("answer")
    if isinstance(answer, str) and answer.strip():
        return answer.strip()
    solution = row.get("solution")
    boxed = last_boxed(solution) if isinstance(solution, str) else None
    return boxed.strip() if boxed is not None and boxed.strip() else None


def math_items(rows: Sequence[dict], n_problems: int, n_shots: int = 2,
               seed: int = 0) -> BenchmarkItems:
    """Few-shot "Problem: ...\\nAnswer: ..." prompts over a seeded shuffle of the rows.

    Rows without a gold (see `math_gold`) are dropped; the rest are permuted with
    numpy default_rng(seed) (so a folder of subjects is mixed); the first n_shots are the
    solved examples of every prompt, the next n_problems are scored."""
    usable = [(str(r["problem"]).strip(), math_gold(r)) for r in rows]
    usable = [(p, g) for p, g in usable if g is not None]
    if len(usable) < n_shots + 1:
        raise BenchmarkError(f"only {len(usable)} problems with a gold answer; need at least "
                             f"n_shots + 1 = {n_shots + 1}")
    order = np.random.default_rng(seed).permutation(len(usable))
    usable = [usable[i] for i in order]
    shots = "".join(f"Problem: {p}\nAnswer: {g}\n\n" for p, g in usable[:n_shots])
    chosen = usable[n_shots:n_shots + n_problems]
    return BenchmarkItems("math", tuple(f"{shots}Problem: {p}\nAnswer:" for p, _ in chosen),
                          tuple(g for _, g in chosen))


def math_correct(prediction: str, gold: str) -> bool:
    """math-verify's judgement of the prediction against the gold answer."""
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


def _eos_ids(lm: LoadedModel) -> set[int]:
    eos = lm.model.generation_config.eos_token_id
    if eos is None:
        eos = lm.tokenizer.eos_token_id
    return set() if eos is None else {int(e) for e in (eos if isinstance(eos, list) else [eos])}


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Number of leading tokens all rows share, leaving every row at least one token of its own."""
    if not rows:
        return 0
    first, shortest = rows[0], min(len(r) for r in rows)
    n = 0
    while n < shortest - 1 and all(r[n] == first[n] for r in rows):
        n += 1
    return n


def _sliding_window(lm: LoadedModel) -> int | None:
    """The attention window of the model's sliding-window layers, None when it has none."""
    cfg = lm.model.config
    cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    window = getattr(cfg, "sliding_window", None)
    if not window:
        return None
    types = getattr(cfg, "layer_types", None)
    if types is not None:
        return int(window) if any("sliding" in str(t) for t in types) else None
    return None if getattr(cfg, "use_sliding_window", True) is False else int(window)


def shared_prefix_length(lm: LoadedModel, prompts: Sequence[Sequence[int]],
                         answers: Sequence[Sequence[int]], max_new_tokens: int) -> int:
    """Leading tokens of the prompts run once and shared (0: none).

    Padding then sits between the shared prefix and each prompt's own tokens. A sliding-window
    layer counts those padding slots inside its window, so with a sliding-window model the
    prefix is shared only when every sequence (prompt + answer or new tokens) fits in the window,
    where sliding and full attention are the same."""
    n = common_prefix_length(prompts)
    window = _sliding_window(lm)
    if n and window is not None:
        longest = max(len(p) for p in prompts) + max(max(len(a) for a in answers),
                                                     max_new_tokens)
        if longest > window:
            return 0
    return n


def shared_prefill_scores(lm: LoadedModel, prompts: Sequence[Sequence[int]],
                          answers: Sequence[Sequence[int]], max_new_tokens: int,
                          batch_size: int) -> tuple[np.ndarray, list[str], int]:
    """Gold NLL and greedy first line per problem from one prefill of each prompt.

    The tokens every prompt starts with (the few-shot examples) are run once, batch 1, and their
    KV cache is repeated for each batch (see `shared_prefix_length`). Per batch, one pass over
    the rest of the prompts (left padding between the shared prefix and each prompt's own tokens,
    masked; position ids over real tokens, so each row sees the positions it would see alone)
    keeps the KV cache and the last position's logits; on a copy of the cache the gold answers
    (right-padded) are teacher-forced in one pass (the NLL, as `gold_nll`). Greedy decoding (the
    answers, as `greedy_answers`) reads those logits while a row's tokens equal its gold
    answer's, so a row answered as the gold needs no further pass; the other rows decode on
    their part of the cache, one token per pass, until each has produced a newline or an
    end-of-sequence token, or max_new_tokens.
    Returns (nll [n], first lines, forward passes).
    """
    import copy

    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    nll = np.zeros(len(prompts), dtype=np.float64)
    texts = [""] * len(prompts)
    passes = 0
    pad, eos, tok = lm.tokenizer.pad_token_id, _eos_ids(lm), lm.tokenizer
    params = _forward_params(lm)
    keep1 = last_logits_only(lm.model)
    cache_kw = "cache" if "cache" in params else "past_key_values"  # renamed in transformers 5
    n_prefix = shared_prefix_length(lm, prompts, answers, max_new_tokens)
    prefix_cache = None
    if n_prefix > 0:
        with torch.inference_mode():
            ids = torch.tensor([list(prompts[0][:n_prefix])], device=lm.device)
            out = lm.model(input_ids=ids, attention_mask=torch.ones_like(ids),
                           position_ids=torch.arange(n_prefix, device=lm.device)[None],
                           use_cache=True, **keep1)
        prefix_cache = _cache_of(out)
        passes += 1
    for idx in length_sorted_batches([len(p) for p in prompts], batch_size):
        batch = left_pad([prompts[i][n_prefix:] for i in idx], pad, lm.device)
        mask = batch["attention_mask"]
        cache_in = {}
        if prefix_cache is not None:
            mask = torch.cat([torch.ones_like(mask[:, :1]).expand(-1, n_prefix), mask], 1)
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(len(idx))
            cache_in = {cache_kw: cache}
        next_pos = mask.sum(-1)  # position of each row's first new token
        with torch.inference_mode():
            out = lm.model(input_ids=batch["input_ids"], attention_mask=mask,
                           position_ids=position_ids_from_mask(mask)[:, n_prefix:],
                           use_cache=True, **cache_in, **keep1)
            first = out.logits[:, -1, :].float()
            cache = _cache_of(out)
            passes += 1
            # teacher forcing of the gold answers on a copy of the cache
            width = max(len(answers[i]) for i in idx)
            ans = torch.full((len(idx), width), pad, dtype=torch.long)
            amask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ans[row, :len(answers[i])] = torch.tensor(answers[i])
                amask[row, :len(answers[i])] = 1
            ans, amask = ans.to(lm.device), amask.to(lm.device)
            positions = next_pos[:, None] + torch.arange(width, device=ans.device)
            forced = lm.model(input_ids=ans, attention_mask=torch.cat([mask, amask], 1),
                              position_ids=positions, use_cache=True,
                              **{cache_kw: copy.deepcopy(cache)}).logits.float()
            passes += 1
            for row, i in enumerate(idx):
                a = torch.tensor(answers[i], device=first.device)
                # logits predicting the answer's tokens: the prompt's last position, then the
                # answer's own positions but its last
                logits = torch.cat([first[row:row + 1], forced[row, :len(a) - 1]]).double()
                nll[i] = -float(torch.log_softmax(logits, -1).gather(1, a[:, None]).sum())
            # greedy decoding with the gold answers as a draft: while a row's greedy tokens
            # equal its gold tokens, the teacher-forced pass already holds its next logits. A
            # row the draft settles (it ends, or reaches max_new_tokens) needs no decoding
            # pass; the others are decoded on their rows of the cache, one token per pass.
            generated = [[] for _ in idx]
            undecided = []
            for row, i in enumerate(idx):
                if not _draft_settles(first[row], forced[row], answers[i], max_new_tokens,
                                      generated[row], eos, tok):
                    generated[row] = []
                    undecided.append(row)
            if undecided:
                passes += _decode_rows(lm, cache, mask, next_pos, first, undecided,
                                       [generated[r] for r in undecided], max_new_tokens, eos,
                                       cache_kw, keep1)
        for row, i in enumerate(idx):
            text = tok.decode(generated[row], skip_special_tokens=True)
            texts[i] = text.split("\n", 1)[0].strip()
    return nll, texts, passes


def _take_token(t: int, generated: list[int], eos: set[int], tok) -> bool:
    """Greedy decoding's rule for one row: an end-of-sequence token ends it (and is not kept);
    any other token is kept, and ends the row once the text holds a newline. True: ended."""
    if t in eos:
        return True
    generated.append(t)
    return "\n" in tok.decode(generated, skip_special_tokens=True)


def _draft_settles(first: torch.Tensor, forced: torch.Tensor, answer: Sequence[int],
                   max_new_tokens: int, generated: list[int], eos: set[int], tok) -> bool:
    """Greedy decoding of one row from the logits already computed: `first` (after the prompt)
    and `forced` (after each gold token). Step k's token is the argmax of `first` for k = 0,
    else of `forced[k - 1]`, valid only while every earlier token equalled the gold's. True when
    the row ends (newline, end of sequence, max_new_tokens) within that; its tokens are in
    `generated`."""
    logits = first
    for step in range(max_new_tokens):
        t = int(logits.argmax())
        if _take_token(t, generated, eos, tok) or step == max_new_tokens - 1:
            return True
        if step >= len(answer) or t != answer[step]:
            return False
        logits = forced[step]
    return True


def _decode_rows(lm: LoadedModel, cache, mask: torch.Tensor, next_pos: torch.Tensor,
                 first: torch.Tensor, rows: list[int], generated: list[list[int]],
                 max_new_tokens: int, eos: set[int], cache_kw: str, keep1: dict) -> int:
    """Greedy decoding of `rows` of a batch on its KV cache (consumed), one token per pass,
    until every row has ended or max_new_tokens; tokens go to `generated` (one list per row).
    Returns the passes run."""
    step_mask, pos, logits = mask, next_pos.clone(), first
    if len(rows) < first.shape[0]:
        sel = torch.tensor(rows, device=first.device)
        cache.batch_select_indices(sel)
        step_mask, pos, logits = mask[sel], next_pos[sel], first[sel]
    done = [False] * len(rows)
    passes = 0
    for step in range(max_new_tokens):
        choice = logits.argmax(-1)
        for k, t in enumerate(choice.tolist()):
            if not done[k]:
                done[k] = _take_token(t, generated[k], eos, lm.tokenizer)
        if all(done) or step == max_new_tokens - 1:
            break
        step_mask = torch.cat([step_mask, torch.ones_like(step_mask[:, :1])], 1)
        out = lm.model(input_ids=choice[:, None], attention_mask=step_mask,
                       position_ids=pos[:, None], use_cache=True, **{cache_kw: cache}, **keep1)
        passes += 1
        pos = pos + 1
        cache, logits = _cache_of(out), out.logits[:, -1, :].float()
    return passes


def _cache_of(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _forward_params(lm: LoadedModel) -> set[str]:
    import inspect

    return set(inspect.signature(lm.model.forward).parameters)


def score_benchmark(lm: LoadedModel, items: BenchmarkItems, max_new_tokens: int,
                    batch_size: int = 16) -> BenchmarkScore:
    """Greedy accuracy and teacher-forced gold NLL of the model as it is now (e.g. perturbed),
    from one prefill per prompt (`shared_prefill_scores`)."""
    t0 = time.perf_counter()
    prompts, answers = _encode(lm, items)
    nll, preds, passes = shared_prefill_scores(lm, prompts, answers, max_new_tokens, batch_size)
    correct = np.array([is_correct(items.name, p, g) for p, g in zip(preds, items.golds)])
    n_tok = np.array([len(a) for a in answers], dtype=np.int64)
    return BenchmarkScore(
        benchmark=items.name, n_problems=len(items), accuracy=float(correct.mean()),
        n_correct=int(correct.sum()), gold_nll_nats=float(nll.mean()),
        gold_nll_per_token_nats=float(nll.sum() / n_tok.sum()), correct=correct, nll_nats=nll,
        n_gold_tokens=n_tok, n_prompt_tokens=np.array([len(p) for p in prompts], dtype=np.int64),
        n_shared_prefix_tokens=shared_prefix_length(lm, prompts, answers, max_new_tokens),
        predictions=tuple(preds), n_forward_passes=passes,
        seconds=time.perf_counter() - t0)
