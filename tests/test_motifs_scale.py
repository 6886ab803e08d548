"""Profiles, FFL backbone, trends, transitions, cosine, linkage and the baseline table."""

import json
import math

import numpy as np
import pytest

from scalelens.motifs.analysis import GraphMotifResult
from scalelens.motifs.census import TRIAD_LABELS, label_index
from scalelens.motifs.profiles import build_model_profile, ffl_backbone
from scalelens.motifs.scale import (
    cohens_d,
    cosine_similarity_matrix,
    fit_trend,
    format_params,
    run_scale_analysis,
)
from scalelens.motifs.zscores import significance_profile


def result(model, z_by_label, task="t", gid="g", null_model="config"):
    """A GraphMotifResult whose Z is given by label (others 0); SP derived from Z."""
    z = np.zeros(16)
    for label, v in z_by_label.items():
        z[label_index(label)] = v
    zeros = np.zeros(16)
    return GraphMotifResult(
        graph_id=gid,
        model=model,
        task=task,
        n_nodes=10,
        n_edges=20,
        null_model=null_model,
        n_random=10,
        seed=0,
        swaps_per_edge=10.0,
        z_threshold=2.0,
        observed=np.zeros(16, dtype=np.int64),
        null_mean=zeros,
        null_std=zeros,
        z=z,
        zero_variance=np.zeros(16, dtype=bool),
        sp=significance_profile(z),
        enriched=(),
        anti_enriched=(),
    )


def test_profiles_mean_std_per_task():
    rs = [
        result("m", {"030T": 1}, "a"),
        result("m", {"030T": 3}, "a"),
        result("m", {"030T": 8}, "b"),
    ]
    p = build_model_profile("m", rs)
    k = label_index("030T")
    assert p.overall.mean_z[k] == pytest.approx(4.0)
    assert p.overall.std_z[k] == pytest.approx(np.std([1, 3, 8], ddof=1))
    assert p.by_task["a"].mean_z[k] == 2.0 and p.by_task["a"].std_z[k] == pytest.approx(np.sqrt(2))
    assert p.by_task["b"].n_graphs == 1 and p.by_task["b"].std_z[k] == 0.0
    assert p.overall.mean_sp[k] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="mixes null models"):
        build_model_profile(
            "m", [result("m", {}, null_model="config"), result("m", {}, null_model="er")]
        )


def test_ffl_backbone_verdict():
    profiles = {
        "x": build_model_profile("x", [result("x", {"030T": 3}), result("x", {"030T": 1})]),
        "y": build_model_profile("y", [result("y", {"030T": 5}), result("y", {"030T": 4})]),
    }
    check = ffl_backbone(profiles)
    x, y = check.per_model
    assert (x.mean_z, x.pct_enriched, x.enriched) == (2.0, 50.0, True)
    assert x.std_z == pytest.approx(np.sqrt(2))
    assert (y.pct_enriched, y.enriched) == (100.0, True)
    assert check.universal and check.verdict == "universal"
    assert not ffl_backbone(profiles, z_threshold=3).universal


def test_trend_hand_computed():
    t = fit_trend("030T", np.array([8.0, 9.0, 10.0]), np.array([1.0, 2.0, 4.0]))
    assert t.slope == pytest.approx(1.5)
    assert t.intercept == pytest.approx(7 / 3 - 13.5)
    assert t.r_squared == pytest.approx(27 / 28)
    t_stat = math.sqrt(27 / 28) / math.sqrt(1 / 28)  # r sqrt(n-2) / sqrt(1-r^2), df = 1 (Cauchy)
    assert t.p_value == pytest.approx(1 - 2 * math.atan(t_stat) / math.pi)
    assert t.spearman_rho == pytest.approx(1.0)
    assert t.direction == "flat"  # p = 0.12 >= 0.05
    up = fit_trend("x", np.array([8.0, 9, 10, 11]), np.array([0.0, 1.1, 1.9, 3.0]))
    down = fit_trend("x", np.array([8.0, 9, 10, 11]), np.array([3.0, 1.9, 1.1, 0.0]))
    assert (up.direction, down.direction) == ("increasing", "decreasing")
    const = fit_trend("x", np.array([8.0, 9, 10]), np.zeros(3))
    assert (const.slope, const.r_squared, const.p_value, const.spearman_rho, const.direction) == (
        0.0,
        0.0,
        1.0,
        0.0,
        "flat",
    )
    two = fit_trend("x", np.array([8.0, 9.0]), np.array([1.0, 2.0]))
    assert two.slope == pytest.approx(1.0) and math.isnan(two.p_value) and two.direction == "flat"


def test_cohens_d_rules():
    assert cohens_d(np.array([1.0, 2, 3]), np.array([4.0, 5, 6])) == pytest.approx((3.0, 1.0))
    d, pooled = cohens_d(np.array([1.0, 3]), np.array([2.0, 2, 2]))  # pooled^2 = (1*2 + 0)/3
    assert pooled == pytest.approx(math.sqrt(2 / 3)) and d == pytest.approx(0.0)
    assert cohens_d(np.array([1.0, 1]), np.array([2.0, 2])) == (math.inf, 0.0)
    assert cohens_d(np.array([2.0, 2]), np.array([1.0, 1])) == (-math.inf, 0.0)
    assert cohens_d(np.array([1.0, 1]), np.array([1.0, 1])) == (0.0, 0.0)
    assert all(math.isnan(v) for v in cohens_d(np.array([1.0]), np.array([2.0])))


def test_cosine_similarity_hand_computed():
    sim = cosine_similarity_matrix(np.array([[1.0, 0], [1, 1], [0, 0]]))
    h = 1 / math.sqrt(2)
    assert sim == pytest.approx(np.array([[1, h, 0], [h, 1, 0], [0, 0, 1]]))


def three_model_results():
    # SP: A = FFL only; B = (2 FFL, 1 chain)/sqrt5; C = chain only. Two identical graphs each.
    zs = {"A": {"030T": 4}, "B": {"030T": 4, "021C": 2}, "C": {"021C": 3}}
    return {m: [result(m, z, "t", f"{m}{i}") for i in range(2)] for m, z in zs.items()}


def test_scale_analysis_similarity_linkage_and_transitions():
    params = {"A": 1e8, "B": 1e9, "C": 1e10, "unused": 5e9}
    a = run_scale_analysis(three_model_results(), params, min_effect_size=1.0)
    assert a.models == ("A", "B", "C")
    s5 = math.sqrt(5)
    assert a.clustering.similarity == pytest.approx(
        np.array([[1, 2 / s5, 0], [2 / s5, 1, 1 / s5], [0, 1 / s5, 1]])
    )
    # average linkage: A,B merge at 1 - 2/sqrt5; C joins at mean(1, 1 - 1/sqrt5)
    link = a.clustering.linkage
    assert link[0, :2].tolist() == [0, 1] and link[0, 2] == pytest.approx(1 - 2 / s5)
    assert link[1, :2].tolist() == [2, 3] and link[1, 2] == pytest.approx((1 + 1 - 1 / s5) / 2)
    assert set(a.clustering.leaf_order) == {"A", "B", "C"}
    # identical graphs within a model: zero pooled sd, any change is an (infinite-d) transition
    ffl = [e for e in a.effects if e.label == "030T"]
    assert [(e.from_model, e.to_model, e.cohens_d) for e in ffl] == [
        ("A", "B", 0.0),
        ("B", "C", -math.inf),
    ]
    assert {(e.label, e.from_model) for e in a.transitions} == {
        ("021C", "A"),
        ("021C", "B"),
        ("030T", "B"),
    }
    trend = {t.label: t for t in a.trends}["021C"]
    assert trend.slope == pytest.approx(1.5) and trend.n_points == 3
    assert a.mean_z.shape == (3, 16) and a.task_mean_z.shape == (3, 1, 16)
    text = json.dumps(a.to_json_dict(), allow_nan=False)  # strict JSON: inf/nan become null
    assert '"cohens_d": null' in text
    arrays = a.arrays()
    assert arrays["z__A"].shape == (2, 16) and arrays["models"].dtype.kind == "U"


def test_graph_level_trends_and_baseline_table():
    results = three_model_results()
    base = [result("base", {"030T": 1.0}, "t", "b0"), result("base", {"030T": 3.0}, "t", "b1")]
    params = {"A": 1e8, "B": 1e9, "C": 1e10}
    a = run_scale_analysis(
        results, params, baseline_results=base, baseline_name="haiku", trend_unit="graph"
    )
    assert {t.label: t for t in a.trends}["030T"].n_points == 6
    rows = {r["label"]: r for r in a.baseline.rows()}
    assert rows["030T"] == {"label": "030T", "haiku": 2.0, "A": 4.0, "B": 4.0, "C": 0.0}
    assert a.baseline.baseline_std_z[a.baseline.labels.index("030T")] == pytest.approx(math.sqrt(2))
    with pytest.raises(ValueError, match="only comparable under the same null"):
        run_scale_analysis(results, params, baseline_results=[result("b", {}, null_model="er")])


def test_scale_input_errors():
    with pytest.raises(ValueError, match="no parameter count"):
        run_scale_analysis(three_model_results(), {"A": 1e8, "B": 1e9})
    with pytest.raises(ValueError, match="at least one model"):
        run_scale_analysis({}, {})


def test_format_params():
    assert [format_params(p) for p in (2.7e8, 1e9, 4e9, 1.2e10, 2.7e10)] == [
        "270M",
        "1B",
        "4B",
        "12B",
        "27B",
    ]
    assert TRIAD_LABELS[8] == "030T"
