"""The study across scales under each null: premise, within-family steps and reads (numbers by
hand), across-family rows marked descriptive, SYNTHETIC in every view and figure title."""

import math

import matplotlib.text
import numpy as np
import pytest
from scipy import stats

from scalelens.motifs.analysis import GraphMotifResult
from scalelens.motifs.census import label_index
from scalelens.motifs.set_census import CensusSettings, GraphCensus, SetCensus
from scalelens.motifs.sets import GraphSetError, GraphSetFacts
from scalelens.motifs.study import CHANGES, NO_CHANGE, mean_interval, run_motif_study
from scalelens.motifs.zscores import significance_profile
from scalelens.plots.motifs import FIGURE_NAMES, build_figures, figure_title, model_label
from scalelens.sweeps.verdicts import INCONCLUSIVE, NOT_APPLICABLE

NULLS = ("config", "layer")
QUALITY = {"faithfulness": 0.6, "faithfulness_random": 0.1, "influence_kept": 0.8,
           "completeness_max_rel_error": 1e-6, "n_nodes": 40.0, "n_edges": 300.0,
           "completeness_max_rel_error_max": 1e-6}


def result(name, z_ffl, z_chain, task, gid, null, n_edges=20):
    z = np.zeros(16)
    z[label_index("030T")], z[label_index("021C")] = z_ffl, z_chain
    return GraphMotifResult(
        graph_id=gid, model=name, task=task, n_nodes=10, n_edges=n_edges, null_model=null,
        n_random=10, seed=0, swaps_per_edge=10.0, z_threshold=2.0,
        observed=np.zeros(16, dtype=np.int64), null_mean=np.zeros(16), null_std=np.zeros(16),
        z=z, zero_variance=np.zeros(16, dtype=bool), sp=significance_profile(z), enriched=(),
        anti_enriched=())


def census(name, family, n_params, ffl, chain=None, layer_shift=0.0, synthetic=False,
           quality=QUALITY, edges=None):
    """A SetCensus with one graph per Z value; the layer null's Z is the config's + shift."""
    chain = chain if chain is not None else [0.0] * len(ffl)
    edges = edges if edges is not None else [20] * len(ffl)
    graphs = []
    for k, (zf, zc, e) in enumerate(zip(ffl, chain, edges)):
        task = "a" if k % 2 == 0 else "b"
        results = {"config": result(name, zf, zc, task, f"{name}-{k}", "config", e),
                   "layer": result(name, zf + layer_shift, zc, task, f"{name}-{k}", "layer", e)}
        graphs.append(GraphCensus(f"{name}-{k}", task, f"{name}/{k}.json", synthetic, None,
                                  results))
    facts = GraphSetFacts(name, "attribution", name, family, "test", False, n_params, "test",
                          synthetic, "test" if synthetic else "", len(ffl), ("a", "b"),
                          len(ffl) if quality else 0, dict(quality or {}))
    return SetCensus(facts, CensusSettings(NULLS, 10, 10.0, True, 0.0, 2.0, 0), tuple(graphs))


def ladder(**extra):
    """Family q: 0.5B -> 1.5B (FFL Z 1,2,3 -> 5,6,7, d = 4); family s: one model in between."""
    sets = {"q-small": census("q-small", "q", 5e8, [1, 2, 3], chain=[0, 0.5, 1]),
            "s-mid": census("s-mid", "s", 1e9, [10, 10.5, 11]),
            "q-large": census("q-large", "q", 1.5e9, [5, 6, 7], chain=[0.2, 0.7, 1.2],
                              layer_shift=-3.0)}
    sets.update(extra)
    return sets


def test_within_family_step_decides_and_across_family_is_descriptive():
    study = run_motif_study(ladder(), NULLS)
    assert study.models == ("q-small", "s-mid", "q-large") and not study.synthetic
    assert study.premise.met and study.premise.decided_on == ("q",)
    read = study.by_null["config"]
    (step,) = read.within_family.steps
    assert (step.family, step.before, step.after) == ("q", "q-small", "q-large")
    # 030T: mean 2 -> 6, both sd 1: pooled sd 1, d = 4 (a transition at min_effect_size 1)
    ffl = next(e for e in read.within_effects["q"] if e.label == "030T")
    assert (ffl.before_mean, ffl.after_mean, ffl.pooled_std, ffl.cohens_d) == (2, 6, 1, 4)
    assert ffl.is_transition
    change = step.changes["mean_z.030T"]
    half = stats.t.ppf(0.975, 2) * 1 / math.sqrt(3)
    assert change.before.point == 2 and change.before.low == pytest.approx(2 - half)
    assert change.delta == 4 and change.after.high == pytest.approx(6 + half)
    assert change.intervals_overlap is True  # 2 + 2.48 > 6 - 2.48: three graphs are few
    assert step.changes["quality.faithfulness"].after.point == 0.6
    assert read.questions["ffl"].verdict == CHANGES
    assert "d = +4.00" in read.questions["ffl"].reason
    # chain 021C: 0.5 -> 0.7, both sd 0.5: d = 0.4, no transition; the profile changes by 030T
    chain = next(e for e in read.within_effects["q"] if e.label == "021C")
    assert chain.cohens_d == pytest.approx(0.4) and not chain.is_transition
    assert read.questions["profile"].verdict == CHANGES
    # the layer null moves q-large's FFL by -3: 2 -> 3, d = 1 exactly (|d| >= 1: a transition)
    layer_ffl = next(e for e in study.by_null["layer"].within_effects["q"] if e.label == "030T")
    assert layer_ffl.cohens_d == pytest.approx(1.0)
    # across families: three points, rows marked as such
    rows = study.trend_rows()
    across = [r for r in rows if r["scope"] == "across_family" and r["label"] == "030T"]
    assert {r["null_model"] for r in across} == set(NULLS) and across[0]["n_points"] == 3
    fit = stats.linregress(np.log10([5e8, 1e9, 1.5e9]), [2, 10.5, 6])
    assert across[0]["slope"] == pytest.approx(fit.slope)
    within = [r for r in rows if r["scope"] == "within_family" and r["label"] == "030T"]
    assert [r["family"] for r in within] == ["q", "q"] and within[0]["n_points"] == 2
    steps = study.transition_rows()
    assert {(r["scope"], r["from_model"], r["to_model"]) for r in steps} == {
        ("across_family", "q-small", "s-mid"), ("across_family", "s-mid", "q-large"),
        ("within_family", "q-small", "q-large")}
    assert all(r["synthetic"] is False for r in rows + steps + study.baseline_rows())
    doc = study.to_dict()
    assert doc["scale_read"] == {n: {"ffl": CHANGES, "profile": CHANGES} for n in NULLS}
    assert "descriptive only" in doc["by_null"]["config"]["across_family"]["label"]
    assert doc["families"] == {"q-small": "q", "s-mid": "s", "q-large": "q"}


def test_no_change_when_the_step_is_small():
    sets = {"a1": census("a1", "a", 1e8, [1, 2, 3]), "a2": census("a2", "a", 2e8, [1.5, 2.5, 3.5])}
    read = run_motif_study(sets, NULLS).by_null["config"]
    assert read.questions["ffl"].verdict == NO_CHANGE  # d = 0.5
    assert "largest: 030T a1 -> a2" in read.questions["ffl"].reason
    assert read.questions["ffl"].caveats == ()  # same graph sizes, faithful graphs


def test_caveats_name_steps_whose_graphs_change_size_or_are_not_faithful():
    weak = {**QUALITY, "faithfulness": 0.05, "faithfulness_random": 0.0}
    sets = {"a1": census("a1", "a", 1e8, [1, 2, 3], edges=[100, 110, 120]),
            "a2": census("a2", "a", 2e8, [6, 7, 8], edges=[40, 45, 50], quality=weak),
            "b": census("b", "b", 5e8, [1, 2, 3], edges=[10, 10, 10], quality=weak)}
    q = run_motif_study(sets, NULLS).by_null["layer"].questions["ffl"]
    assert q.verdict == CHANGES and len(q.caveats) == 2
    assert q.caveats[0] == ("graph size changes in a1 -> a2: 110 -> 45 edges per graph (Z grows "
                            "with graph size)")
    assert q.caveats[1].startswith("a2's graphs are barely faithful: faithfulness 0.050 vs 0.000")
    assert not any("b's" in c for c in q.caveats)  # family b decides nothing


def test_premise_not_met_without_two_sizes_of_one_family():
    sets = {"x": census("x", "fx", 1e8, [1, 2, 3]), "y": census("y", "fy", 1e9, [7, 8, 9])}
    study = run_motif_study(sets, NULLS)
    assert not study.premise.met
    for read in study.by_null.values():
        assert {q.verdict for q in read.questions.values()} == {NOT_APPLICABLE}
        assert "no family has 2 or more sizes" in read.questions["ffl"].reason
        assert read.within_family.steps == () and read.analysis.transitions  # d = 6: described


def test_families_that_disagree_are_inconclusive():
    sets = {"a1": census("a1", "a", 1e8, [1, 2, 3]), "a2": census("a2", "a", 2e8, [6, 7, 8]),
            "b1": census("b1", "b", 1e8, [1, 2, 3]), "b2": census("b2", "b", 3e8, [1, 2, 3.1])}
    read = run_motif_study(sets, ("config",)).by_null["config"]
    assert read.questions["ffl"].verdict == INCONCLUSIVE
    assert {f: v for f, (v, _) in read.questions["ffl"].by_family.items()} == {
        "a": CHANGES, "b": NO_CHANGE}


def test_sizes_baseline_and_mean_interval():
    base = census("base", "unknown", None, [4, 4, 5])
    study = run_motif_study(ladder(base=base), NULLS, "base")
    assert "base" not in study.models and study.baseline == "base"
    rows = study.baseline_rows()
    ffl = next(r for r in rows if r["null_model"] == "config" and r["label"] == "030T")
    assert ffl["base"] == pytest.approx(13 / 3) and ffl["q-large"] == 6
    with pytest.raises(GraphSetError, match="only the baseline"):
        run_motif_study(ladder(base=base), NULLS)
    q = mean_interval([1.0])
    assert q.point == 1.0 and math.isnan(q.low)


@pytest.fixture(scope="module")
def synthetic_study():
    syn = census("synthetic-x", "synthetic", 3e8, [0, 1, 2], synthetic=True, quality=None)
    return run_motif_study(ladder(**{"synthetic-x": syn}), NULLS)


def test_synthetic_in_every_view(synthetic_study):
    s = synthetic_study
    assert s.synthetic and s.synthetic_sets == ("synthetic-x",)
    doc = s.to_dict()
    assert doc["synthetic"] is True and doc["synthetic_sets"] == ["synthetic-x"]
    for rows in (s.trend_rows(), s.transition_rows(), s.baseline_rows()):
        assert rows and all(r["synthetic"] is True for r in rows)
    assert bool(s.arrays()["synthetic"])
    assert figure_title(s, "t").startswith("SYNTHETIC DATA")
    assert "SYNTHETIC" in model_label(s, "synthetic-x")


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text)]


def test_figure_titles_say_synthetic_and_show_families_quality_and_both_nulls(synthetic_study):
    import matplotlib.pyplot as plt

    real = run_motif_study(ladder(), NULLS)
    for study, synthetic in ((synthetic_study, True), (real, False)):
        figures = build_figures(study)
        assert list(figures) == list(FIGURE_NAMES)
        for name, fig in figures.items():
            title = fig._suptitle.get_text()
            assert title.startswith("SYNTHETIC DATA") is synthetic, name
            assert any(t == "SYNTHETIC" for t in _texts(fig)) is synthetic, name  # watermark
            if name == "baseline_comparison":  # no baseline declared: a placeholder
                assert any("motifs.baseline is empty" in t for t in _texts(fig))
                continue
            text = " ".join(_texts(fig))
            assert "config" in text and "layer" in text, name  # both nulls shown
            assert all(f in text for f in ("q", "s")), name
        heat = " ".join(_texts(figures["scale_heatmap"]))
        assert "faith 0.60 vs rnd 0.10, infl 0.80" in heat  # quality beside the Z-scores
        assert "family q" in " ".join(_texts(figures["ffl_across_scales"]))
        plt.close("all")
