"""Benchmark scoring offline: boxed answers, problem files, math-verify, NLL and greedy by hand."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from scalelens.evaluation import (
    BenchmarkError,
    BenchmarkItems,
    arithmetic_correct,
    arithmetic_items,
    cached_dataset_rows,
    gold_nll,
    greedy_answers,
    last_boxed,
    load_math_rows,
    math_correct,
    math_items,
    score_benchmark,
)

ROWS = [
    {"problem": "What is $1+1$?", "solution": "Clearly $1+1=\\boxed{2}$."},
    {"problem": "Half of one?", "solution": "It is \\boxed{\\frac{1}{2}}."},
    {"problem": "No box here.", "solution": "The answer is 7."},
    {"problem": "Set?", "solution": "First \\boxed{1}, finally $\\boxed{\\{1, 2\\}}$"},
    {"problem": "Square of 3?", "solution": "$3^2 = \\boxed{9}$"},
]


def test_last_boxed_balances_nested_braces():
    assert last_boxed("x \\boxed{\\frac{1}{2}} y") == "\\frac{1}{2}"
    assert last_boxed("\\boxed{1} and \\boxed{ {a}{b} }") == " {a}{b} "
    assert last_boxed("\\fbox{3}") == "3"
    assert last_boxed("no answer") is None
    # an unclosed last box falls back to the last complete one
    assert last_boxed("\\boxed{4} then \\boxed{5") == "4"


def test_problem_files_jsonl_and_parquet(tmp_path):
    jl = tmp_path / "p.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n", encoding="utf-8")
    pq = tmp_path / "p.parquet"
    pd.DataFrame(ROWS).to_parquet(pq)
    assert load_math_rows(str(jl)) == ROWS
    assert load_math_rows(str(pq)) == ROWS
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "x"}) + "\n")
    with pytest.raises(BenchmarkError, match="problem or solution"):
        load_math_rows(str(bad))
    with pytest.raises(BenchmarkError, match="math_path is empty"):
        load_math_rows("")


def test_cached_hub_dataset_is_read_without_network(tmp_path):
    snap = tmp_path / "datasets--org--mathy" / "snapshots" / "abc123"
    (snap / "data").mkdir(parents=True)
    (tmp_path / "datasets--org--mathy" / "refs").mkdir()
    (tmp_path / "datasets--org--mathy" / "refs" / "main").write_text("abc123")
    pd.DataFrame(ROWS[:2]).to_parquet(snap / "data" / "test-00000-of-00001.parquet")
    pd.DataFrame(ROWS[2:]).to_parquet(snap / "data" / "train-00000-of-00001.parquet")
    assert cached_dataset_rows("org/mathy", "test", cache_dir=tmp_path) == ROWS[:2]
    assert load_math_rows("org/mathy", "train", cache_dir=tmp_path) == ROWS[2:]
    with pytest.raises(BenchmarkError, match="local Hugging Face cache"):
        cached_dataset_rows("org/not-cached", "test", cache_dir=tmp_path)


def test_math_items_use_boxed_gold_and_shots():
    items = math_items(ROWS, n_problems=10, n_shots=1)
    assert items.golds == ("\\frac{1}{2}", "\\{1, 2\\}", "9")  # the unboxed row is skipped
    shot = "Problem: What is $1+1$?\nAnswer: 2\n\n"
    assert items.prompts[0] == shot + "Problem: Half of one?\nAnswer:"
    with pytest.raises(BenchmarkError, match="n_shots"):
        math_items(ROWS[:1], n_problems=1, n_shots=1)


def test_math_verify_decides_correctness():
    assert math_correct("0.5", "\\frac{1}{2}")
    assert math_correct("$\\frac12$", "\\frac{1}{2}")
    assert not math_correct("2", "\\frac{1}{2}")
    assert not math_correct("", "9")
    assert math_correct("9", "9")


def test_arithmetic_items_are_seeded_sums():
    a = arithmetic_items(20, n_shots=3, seed=1, low=10, high=99)
    assert a == arithmetic_items(20, n_shots=3, seed=1, low=10, high=99)
    assert a != arithmetic_items(20, n_shots=3, seed=2, low=10, high=99)
    shots = a.prompts[0].rsplit("Q:", 1)[0]
    assert shots.count("\nA: ") == 3 and all(p.startswith(shots) for p in a.prompts)
    for prompt, gold in zip(a.prompts, a.golds):
        x, y = prompt.rsplit("Q: ", 1)[1].split(" = ?")[0].split(" + ")
        assert 10 <= int(x) <= 99 and 10 <= int(y) <= 99
        assert int(gold) == int(x) + int(y)
    assert len(set(a.prompts)) == 20
    with pytest.raises(ValueError, match="distinct pairs"):  # 1..2 has only 4 pairs
        arithmetic_items(4, n_shots=1, seed=0, low=1, high=2)
    assert arithmetic_correct(" 68 apples", "68")
    assert not arithmetic_correct("6 8", "68")
    assert not arithmetic_correct("none", "68")


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
