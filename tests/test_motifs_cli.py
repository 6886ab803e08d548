"""`python -m scalelens.motifs census`: JSON on success; one stderr line and exit 2 on errors.

Two runs go through a real subprocess (exit status, no traceback); the other error kinds call
the same `main` in-process to keep the test time small.
"""

import json
import subprocess
import sys
from math import comb
from pathlib import Path

import pytest

from scalelens.motifs.__main__ import main
from scalelens.motifs.census import CONNECTED_LABELS, TRIAD_LABELS

ROOT = Path(__file__).resolve().parents[1]
GRAPH = (ROOT / "data" / "graphs" / "synthetic-small" / "arithmetic"
         / "synthetic-small-arithmetic-0.json")


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "scalelens.motifs", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_census_prints_json_report_in_subprocess():
    proc = run_cli("census", GRAPH, "--null", "layer", "--n-random", "12", "--seed", "4")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["null_model"] == "layer" and report["n_random"] == 12 and report["seed"] == 4
    assert report["synthetic"] is True  # the graph's metadata says so
    assert list(report["census"]) == list(TRIAD_LABELS)
    assert sum(report["census"].values()) == comb(report["n_nodes"], 3)
    assert report["n_edges"] > 0
    for key in ("null_mean", "null_std", "z", "zero_variance"):
        assert list(report[key]) == list(TRIAD_LABELS)
    assert list(report["sp"]) == list(CONNECTED_LABELS)


def test_missing_file_in_subprocess_is_one_line_exit_2(tmp_path):
    path = tmp_path / "missing.json"
    proc = run_cli("census", path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"error: {path}: file not found"]


@pytest.mark.parametrize(
    ("content", "message"),
    [("{oops", "not valid JSON"), ('{"nodes": []}', "missing required key 'links'")],
)
def test_bad_files_are_one_line_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "graph.json"
    path.write_text(content)
    assert main(["census", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and str(path) in lines[0]


def test_bad_option_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["census", str(GRAPH), "--null", "shuffle"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "invalid choice" in err


def test_in_process_run_matches_flags(capsys):
    assert main(["census", str(GRAPH), "--null", "er", "--n-random", "5", "--seed", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["null_model"] == "er" and report["n_random"] == 5
