"""Benchmark scoring offline: boxed answers, problem files, math-verify, NLL and greedy by hand."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from scalelens.evaluation import (
    BenchmarkError,
    BenchmarkItems,
    arithmetic_correct,
    arithmetic_items,
    common_prefix_length,
    gold_nll,
    greedy_answers,
    is_correct,
    last_boxed,
    load_math_rows,
    math_correct,
    math_gold,
    math_items,
    score_benchmark,
    shared_prefill_scores,
    shared_prefix_length,
)

DATA = Path(__file__).parent / "data" / "math"
M500 = [json.loads(x) for x in (DATA / "math500_style.jsonl").read_text().splitlines()]
HM = [json.loads(x) for x in (DATA / "hendrycks_style.jsonl").read_text().splitlines()]
M500_GOLDS = ["\\left( 3, \\frac{\\pi}{2} \\right)", "\\frac{1}{2}", "2\\sqrt{3}", "6", "-3",
              "2, 3"]
HM_GOLDS = ["\\dfrac{3}{2}", "\\frac{\\sqrt{2}}{2}", "(-2, 2)", "\\frac{1}{4}", "10",
            "120^\\circ"]


def test_last_boxed_balances_nested_braces():
    assert last_boxed("x \\boxed{\\frac{1}{2}} y") == "\\frac{1}{2}"
    assert last_boxed("\\boxed{1} and \\boxed{ {a}{b} }") == " {a}{b} "
    assert last_boxed("\\fbox{3}") == "3"
    assert last_boxed("no answer") is None
    # an unclosed last box falls back to the last complete one
    assert last_boxed("\\boxed{4} then \\boxed{5") == "4"


def test_gold_of_both_schemas():
    """MATH-500: the answer field; hendrycks_math: the last box of the solution."""
    assert [math_gold(r) for r in M500] == M500_GOLDS
    assert [math_gold(r) for r in HM] == HM_GOLDS  # the earlier \\boxed{\\frac12} is not taken
    assert all(r["answer"] == last_boxed(r["solution"]).strip() for r in M500)
    assert math_gold({"problem": "p", "answer": "  ", "solution": "so \\boxed{7}"}) == "7"
    assert math_gold({"problem": "p", "solution": "no box"}) is None


def _write_all_formats(folder, rows, stem):
    import pyarrow as pa

    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / f"{stem}.json").write_text(json.dumps(rows))
    pd.DataFrame(rows).to_parquet(folder / f"{stem}.parquet")
    with pa.OSFile(str(folder / f"{stem}.arrow"), "wb") as sink:  # as the datasets cache does
        table = pa.Table.from_pylist(rows)
        with pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)


@pytest.mark.parametrize("rows,stem", [(M500, "m500"), (HM, "hm")])
def test_problem_files_in_every_format_give_the_same_rows(tmp_path, rows, stem):
    _write_all_formats(tmp_path, rows, stem)
    for suffix in (".jsonl", ".json", ".parquet", ".arrow"):
        got = load_math_rows(str(tmp_path / f"{stem}{suffix}"))
        assert [math_gold(r) for r in got] == [math_gold(r) for r in rows], suffix
        assert [r["problem"] for r in got] == [r["problem"] for r in rows]
    # Dataset.to_json writes JSON Lines into a .json file
    (tmp_path / "lines.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert load_math_rows(str(tmp_path / "lines.json")) == rows


def test_bad_sources_are_one_line_errors_naming_them(tmp_path):
    missing = tmp_path / "MATH-500" / "test.jsonl"
    with pytest.raises(BenchmarkError, match="no such file") as e:
        load_math_rows(str(missing))
    assert str(missing) in str(e.value) and "Repo id" not in str(e.value)
    for name in ("data/math500.jsonl", "./math.parquet", "/nowhere/at/all", "a/b/c"):
        with pytest.raises(BenchmarkError, match="no such file") as e:
            load_math_rows(name)
        assert name in str(e.value) and "\n" not in str(e.value)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "x"}) + "\n")
    with pytest.raises(BenchmarkError, match="lacks a problem"):
        load_math_rows(str(bad))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"problem": "x", "answer": "1"}\n{not json\n')
    with pytest.raises(BenchmarkError, match="broken.jsonl:2"):
        load_math_rows(str(broken))
    with pytest.raises(BenchmarkError, match="math_path is empty"):
        load_math_rows("")


def _hub_cache(cache, repo, files: dict[str, list[dict]]):
    """A hub cache entry as `hf download` / load_dataset leave it: refs/main -> a snapshot."""
    folder = cache / f"datasets--{repo.replace('/', '--')}"
    snap = folder / "snapshots" / "abc123"
    for rel, rows in files.items():
        (snap / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".jsonl"):
            (snap / rel).write_text("".join(json.dumps(r) + "\n" for r in rows))
        else:
            pd.DataFrame(rows).to_parquet(snap / rel)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("abc123")


def test_cached_math500_and_hendrycks_layouts_without_network(tmp_path):
    _hub_cache(tmp_path, "HuggingFaceH4/MATH-500", {"test.jsonl": M500})
    _hub_cache(tmp_path, "EleutherAI/hendrycks_math", {
        "algebra/test-00000-of-00001.parquet": HM[:3],
        "algebra/train-00000-of-00001.parquet": M500[:1],
        "counting_and_probability/test-00000-of-00001.parquet": HM[3:5],
        "geometry/test-00000-of-00001.parquet": HM[5:]})
    assert load_math_rows("HuggingFaceH4/MATH-500", cache_dir=tmp_path) == M500
    every = load_math_rows("EleutherAI/hendrycks_math", "test", cache_dir=tmp_path)
    assert [math_gold(r) for r in every] == HM_GOLDS  # all configs, sorted by path
    algebra = load_math_rows("EleutherAI/hendrycks_math", "test", "algebra", cache_dir=tmp_path)
    assert [math_gold(r) for r in algebra] == HM_GOLDS[:3]
    train = load_math_rows("EleutherAI/hendrycks_math", "train", cache_dir=tmp_path)
    assert [math_gold(r) for r in train] == M500_GOLDS[:1]
    with pytest.raises(BenchmarkError, match="no config 'number_theory'.*algebra"):
        load_math_rows("EleutherAI/hendrycks_math", "test", "number_theory", cache_dir=tmp_path)
    with pytest.raises(BenchmarkError, match="no file for split 'validation'"):
        load_math_rows("EleutherAI/hendrycks_math", "validation", cache_dir=tmp_path)
    with pytest.raises(BenchmarkError, match="local Hugging Face cache") as e:
        load_math_rows("org/not-cached", cache_dir=tmp_path, datasets_cache=tmp_path)
    assert "org/not-cached" in str(e.value)


def test_datasets_arrow_cache_newest_build_per_config(tmp_path):
    """load_dataset's own cache: <org>___<name>/<config>/<version>/<hash>/<name>-<split>.arrow."""
    import os

    base = tmp_path / "EleutherAI___hendrycks_math"
    old, new = base / "algebra" / "0.0.0" / "old", base / "algebra" / "0.0.0" / "new"
    _write_all_formats(old, HM[:1], "hendrycks_math-test")
    _write_all_formats(new, HM[:3], "hendrycks_math-test")
    _write_all_formats(base / "geometry" / "0.0.0" / "h", HM[5:], "hendrycks_math-test")
    for f in list(base.rglob("*")):
        if f.is_file() and f.suffix != ".arrow":
            f.unlink()
    os.utime(old, (1_000_000, 1_000_000))
    rows = load_math_rows("EleutherAI/hendrycks_math", cache_dir=tmp_path / "hub",
                          datasets_cache=tmp_path)
    assert [math_gold(r) for r in rows] == HM_GOLDS[:3] + HM_GOLDS[5:]
    # a folder given as a path is read the same way
    assert load_math_rows(str(base)) == rows


def test_math_items_shuffle_with_the_seed_then_take_shots_and_problems():
    rows = M500 + HM + [{"problem": "No box here.", "solution": "The answer is 7."}]
    items = math_items(rows, n_problems=4, n_shots=2, seed=3)
    usable = [(r["problem"].strip(), math_gold(r)) for r in rows[:-1]]  # the unboxed row dropped
    order = np.random.default_rng(3).permutation(len(usable))
    expect = [usable[i] for i in order]
    shots = "".join(f"Problem: {p}\nAnswer: {g}\n\n" for p, g in expect[:2])
    assert items.prompts == tuple(f"{shots}Problem: {p}\nAnswer:" for p, _ in expect[2:6])
    assert items.golds == tuple(g for _, g in expect[2:6])
    assert math_items(rows, 4, 2, seed=3) == items
    assert math_items(rows, 4, 2, seed=4) != items
    assert len(math_items(rows, 100, 2, seed=0)) == len(usable) - 2  # as many as there are
    with pytest.raises(BenchmarkError, match="n_shots"):
        math_items(rows[:1], n_problems=1, n_shots=1)


@pytest.mark.parametrize("gold,right,wrong", [
    (M500_GOLDS[0], "$(3, \\frac{\\pi}{2})$", "$(3, \\pi)$"),
    (M500_GOLDS[1], "0.5", "\\frac{1}{3}"),
    (M500_GOLDS[2], "$\\sqrt{12}$", "3\\sqrt{2}"),
    (M500_GOLDS[4], "x = -3", "3"),
    (HM_GOLDS[0], "1.5", "\\frac{2}{3}"),
    (HM_GOLDS[1], "$\\frac{1}{\\sqrt{2}}$", "\\sqrt{2}"),
    (HM_GOLDS[2], "$(-2,2)$", "$[-2,2]$"),
    (HM_GOLDS[3], "$\\frac14$", "$\\frac12$"),
    (HM_GOLDS[4], "10", "20"),
])
def test_math_verify_accepts_equivalent_forms_and_rejects_wrong_answers(gold, right, wrong):
    assert math_correct(right, gold)
    assert not math_correct(wrong, gold)
    assert is_correct("math", right, gold) and not is_correct("math", wrong, gold)
    assert not math_correct("", gold)


def test_arithmetic_items_are_seeded_sums():
    a = arithmetic_items(20, n_shots=3, seed=1, low=10, high=99, fmt="qa")
    assert a == arithmetic_items(20, n_shots=3, seed=1, low=10, high=99, fmt="qa")
    assert a != arithmetic_items(20, n_shots=3, seed=2, low=10, high=99, fmt="qa")
    shots = a.prompts[0].rsplit("Q:", 1)[0]
    assert shots.count("\nA: ") == 3 and all(p.startswith(shots) for p in a.prompts)
    for prompt, gold in zip(a.prompts, a.golds):
        x, y = prompt.rsplit("Q: ", 1)[1].split(" = ?")[0].split(" + ")
        assert 10 <= int(x) <= 99 and 10 <= int(y) <= 99
        assert int(gold) == int(x) + int(y)
    assert len(set(a.prompts)) == 20
    with pytest.raises(ValueError, match="distinct pairs"):  # 1..2 has only 4 pairs
        arithmetic_items(4, n_shots=1, seed=0, low=1, high=2)
    with pytest.raises(ValueError, match="format"):
        arithmetic_items(4, fmt="words")
    assert arithmetic_correct(" 68 apples", "68")
    assert not arithmetic_correct("6 8", "68")
    assert not arithmetic_correct("none", "68")


def test_equation_format_is_the_same_sums_as_lines():
    qa = arithmetic_items(5, n_shots=2, seed=4, low=1, high=20, fmt="qa")
    eq = arithmetic_items(5, n_shots=2, seed=4, low=1, high=20)  # the default format
    assert eq.golds == qa.golds
    lines = eq.prompts[0].split("\n")
    assert len(lines) == 3  # two solved lines, then the problem
    for line in lines[:2]:
        x, rest = line.split(" + ")
        y, z = rest.split(" = ")
        assert int(x) + int(y) == int(z) and 1 <= int(x) <= 20 and 1 <= int(y) <= 20
    for prompt, q, gold in zip(eq.prompts, qa.prompts, eq.golds):
        x, y = prompt.rsplit("\n", 1)[1].removesuffix(" =").split(" + ")
        assert prompt.endswith(f"{x} + {y} =") and q.endswith(f"Q: {x} + {y} = ?\nA:")
        assert int(x) + int(y) == int(gold)


def _hand_nll(lm, prompt, gold):
    p = lm.tokenizer(prompt)["input_ids"]
    a = lm.tokenizer(" " + gold, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = lm.model(torch.tensor([p + a])).logits[0].double()
    logp = torch.log_softmax(logits, -1)
    return -sum(float(logp[len(p) - 1 + k, t]) for k, t in enumerate(a))


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_gold_nll_matches_a_hand_computation_from_logits(tiny_lm, arch):
    lm = tiny_lm(arch)
    items = BenchmarkItems("arithmetic", ("Q: 1 + 2 = ?\nA:", "Q: 10 + 22 = ?\nA:", "x"),
                           ("3", "32", "12345"))
    prompts = [lm.tokenizer(p)["input_ids"] for p in items.prompts]
    answers = [lm.tokenizer(" " + g, add_special_tokens=False)["input_ids"] for g in items.golds]
    nll, passes = gold_nll(lm, prompts, answers, batch_size=3)
    assert passes == 1
    expected = [_hand_nll(lm, p, g) for p, g in zip(items.prompts, items.golds)]
    np.testing.assert_allclose(nll, expected, rtol=1e-5)


def test_greedy_answers_equal_unbatched_greedy_decoding(tiny_lm):
    lm = tiny_lm("llama")
    texts = ["Q: 1 + 2 = ?\nA:", "a much longer prompt than the others: ", "z"]
    prompts = [lm.tokenizer(t)["input_ids"] for t in texts]
    got, steps = greedy_answers(lm, prompts, max_new_tokens=5, batch_size=3)
    assert 1 <= steps <= 5
    for ids, answer in zip(prompts, got):
        seq = list(ids)
        with torch.no_grad():
            for _ in range(5):  # greedy until the end-of-sequence token, as generate does
                seq.append(int(lm.model(torch.tensor([seq])).logits[0, -1].argmax()))
                if seq[-1] == lm.model.generation_config.eos_token_id:
                    break
        text = lm.tokenizer.decode(seq[len(ids):], skip_special_tokens=True)
        assert answer == text.split("\n", 1)[0].strip()


def _check_against_separate_passes(lm, texts, golds, max_new_tokens, batch_size):
    prompts = [lm.tokenizer(t)["input_ids"] for t in texts]
    answers = [lm.tokenizer(" " + g, add_special_tokens=False)["input_ids"] for g in golds]
    nll, texts_got, passes = shared_prefill_scores(lm, prompts, answers, max_new_tokens,
                                                   batch_size)
    ref_nll, _ = gold_nll(lm, prompts, answers, batch_size=batch_size)
    ref_text, _ = greedy_answers(lm, prompts, max_new_tokens, batch_size=batch_size)
    np.testing.assert_allclose(nll, ref_nll, rtol=1e-5)
    assert texts_got == ref_text
    n_batches = -(-len(texts) // batch_size)
    shared = shared_prefix_length(lm, prompts, answers, max_new_tokens) > 0
    assert int(shared) + 2 * n_batches <= passes <= int(shared) + n_batches * (
        2 + max_new_tokens - 1)
    return prompts, answers


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gemma3_text"])
@pytest.mark.parametrize("max_new_tokens", [1, 5])
def test_one_prefill_scores_equal_the_separate_nll_and_greedy_passes(tiny_lm, arch,
                                                                     max_new_tokens):
    """The one-prefill scorer against gold_nll and greedy_answers (each checked by hand above):
    prompts of different lengths in a batch, answers of 1 to 6 tokens; few-shot prompts whose
    shared shots are run once (full attention), and tiny Gemma 3, whose 16-token sliding window
    is shorter than the prompts (no shared prefix there: padding after it would count in the
    window)."""
    lm = tiny_lm(arch)
    items = arithmetic_items(7, n_shots=2, seed=0, low=1, high=20)
    prompts, answers = _check_against_separate_passes(lm, items.prompts, items.golds,
                                                      max_new_tokens, 3)
    assert max(len(p) for p in prompts) > 16 and len({len(a) for a in answers}) > 1
    n_shared = shared_prefix_length(lm, prompts, answers, max_new_tokens)
    shots = lm.tokenizer(items.prompts[0].rsplit("\n", 1)[0] + "\n")["input_ids"]
    if arch == "gemma3_text":
        assert n_shared == 0
    else:  # at least the shots' tokens, fewer than the shortest prompt
        assert len(shots) - 1 <= n_shared < min(len(p) for p in prompts)
    _check_against_separate_passes(  # nothing shared but the start
        lm, list(items.prompts[:3]) + ["x", "Problem: What is $\\frac{1}{2}$ of 8?\nAnswer:"],
        list(items.golds[:3]) + ["123456", "4"], max_new_tokens, 3)


def _greedy_ids(lm, prompt, n):
    """The model's first n greedy tokens after prompt, one unbatched pass per token."""
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            seq.append(int(lm.model(torch.tensor([seq])).logits[0, -1].argmax()))
    return seq[len(prompt):]


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_rows_answered_as_their_gold_need_no_decoding_pass(tiny_lm, arch):
    """The gold answers are the draft: where a row's greedy tokens are its gold's, decoding reads
    the teacher-forced logits and runs no pass for it. Here the golds are the model's own first 3
    greedy tokens (so with max_new_tokens 4 every row is settled by the prefill and the forced
    pass), then the same with two rows given a wrong gold (decoded for real, on their rows)."""
    lm = tiny_lm(arch)
    texts = ["Q: 1 + 2 = ?\nA:", "a much longer prompt than the others: ", "zq", "7 * 8 ="]
    prompts = [lm.tokenizer(t)["input_ids"] for t in texts]
    own = [_greedy_ids(lm, p, 3) for p in prompts]
    ref_text, _ = greedy_answers(lm, prompts, 4, batch_size=4)
    for answers, decoded_rows in ((own, 0), ([own[0], [5, 6], own[2], [7]], 2)):
        nll, got, passes = shared_prefill_scores(lm, prompts, answers, 4, batch_size=4)
        ref_nll, _ = gold_nll(lm, prompts, answers, batch_size=4)
        np.testing.assert_allclose(nll, ref_nll, rtol=1e-5)
        assert got == ref_text
        shared = int(shared_prefix_length(lm, prompts, answers, 4) > 0)
        if decoded_rows == 0:
            assert passes == shared + 2  # prefill and forced pass only
        else:
            assert shared + 3 <= passes <= shared + 2 + 3


def test_shared_prefix_inside_a_sliding_window(tiny_lm):
    """Sequences shorter than tiny Gemma 3's window: the prefix is shared and the scores equal."""
    lm = tiny_lm("gemma3_text")
    texts, golds = ["1+2=", "1+3=", "1+13=", "1+1="], ["3", "4", "14", "2"]
    prompts, answers = _check_against_separate_passes(lm, texts, golds, 2, 2)
    assert 0 < shared_prefix_length(lm, prompts, answers, 2) == common_prefix_length(prompts)
    assert common_prefix_length([[1, 2, 3], [1, 2, 4]]) == 2
    assert common_prefix_length([[1, 2], [1, 2, 3]]) == 1  # each row keeps a token of its own
    assert common_prefix_length([[5], [6]]) == 0


def test_score_benchmark_accuracy_and_nll_summaries(tiny_lm):
    lm = tiny_lm("qwen2")
    items = arithmetic_items(6, n_shots=1, seed=0)
    s = score_benchmark(lm, items, max_new_tokens=3, batch_size=4)
    assert s.n_problems == 6
    assert s.correct.tolist() == [arithmetic_correct(p, g)
                                  for p, g in zip(s.predictions, items.golds)]
    assert s.accuracy == pytest.approx(s.correct.mean())
    assert s.gold_nll_nats == pytest.approx(s.nll_nats.mean())
    assert s.gold_nll_per_token_nats == pytest.approx(s.nll_nats.sum() / s.n_gold_tokens.sum())
    assert np.all(s.nll_nats > 0)
