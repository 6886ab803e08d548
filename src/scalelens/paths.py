"""Every result path, written once: a model key -> its slug -> each file a stage reads or writes.

Stages, the dvc.yaml generator (`scalelens.pipeline`) and the tests all take paths from here, so
a model listed as a registry key, a hub id (`org/name`), a local directory or `tiny:<arch>` lands
in the same files whichever stage asks. The slug is the key made safe as one file-name part:

| key | slug |
| --- | --- |
| registry key `qwen2.5-coder-0.5b` | `qwen2.5-coder-0.5b` |
| hub id `EleutherAI/pythia-410m` | `EleutherAI--pythia-410m` |
| local directory `/data/ckpt/my-model/` | `my-model` (the folder's name) |
| `tiny:llama:3` | `tiny-llama-3` |

Two keys of one ladder with the same slug (two local folders both named `ckpt`) are an error
(`check_unique_slugs`), never a silent overwrite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from scalelens.errors import ScalelensError

RESULTS = Path("results")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class MissingInputError(ScalelensError):
    pass


def is_local_dir(key: str) -> bool:
    """A key that names an existing directory (absolute, or relative to the working folder)."""
    return not key.startswith("tiny:") and Path(key).expanduser().is_dir()


def model_slug(key: str) -> str:
    """The model key as a single, safe file-name part (see the module docstring)."""
    if not key or not key.strip():
        raise ScalelensError("a model key is empty; list registry keys, org/name hub ids, local "
                             "directories or tiny:<arch> under `models` in params.yaml")
    if key.startswith("tiny:"):
        raw = key.replace(":", "-")
    elif is_local_dir(key):
        raw = Path(key).expanduser().resolve().name
    else:
        raw = key.replace("/", "--")
    slug = _UNSAFE.sub("-", raw).strip("-.")
    if not slug:
        raise ScalelensError(f"model key {key!r} gives no usable file name; rename its folder")
    return slug


def check_unique_slugs(keys) -> dict[str, str]:
    """{slug: key} for a ladder; two keys with one slug are an error naming both."""
    seen: dict[str, str] = {}
    for key in keys:
        slug = model_slug(key)
        if slug in seen and seen[slug] != key:
            raise ScalelensError(
                f"models {seen[slug]!r} and {key!r} would both write results/.../{slug}*: give "
                f"one of the folders another name")
        seen[slug] = key
    return seen


@dataclass(frozen=True)
class ModelPaths:
    """Every per-model file of the pipeline, for one slug (dvc.yaml uses the slug `${key}`)."""

    slug: str

    def _p(self, folder: str, name: str) -> Path:
        return RESULTS / folder / name

    # stage extract
    @property
    def activations_npz(self) -> Path:
        return self._p("activations", f"{self.slug}.npz")

    @property
    def activations_json(self) -> Path:
        return self._p("activations", f"{self.slug}.json")

    # stage phiid
    @property
    def phiid_npz(self) -> Path:
        return self._p("phiid", f"{self.slug}_pairwise_phiid.npz")

    @property
    def phiid_metrics(self) -> Path:
        return self._p("phiid", f"{self.slug}_phiid_metrics.json")

    @property
    def phiid_fig(self) -> Path:
        return self._p("phiid", f"{self.slug}_fig2a_pairwise.png")

    @property
    def phiid_shards(self) -> Path:
        """Checkpoints of sharded PhiID runs (not a DVC out: they resume interrupted jobs)."""
        return RESULTS / "phiid" / "shards" / self.slug

    # stage rank
    @property
    def rankings_csv(self) -> Path:
        return self._p("phiid", f"{self.slug}_head_rankings.csv")

    @property
    def layer_profile_json(self) -> Path:
        return self._p("phiid", f"{self.slug}_layer_profile.json")

    @property
    def rank_metrics(self) -> Path:
        return self._p("phiid", f"{self.slug}_rank_metrics.json")

    @property
    def rank_fig(self) -> Path:
        return self._p("phiid", f"{self.slug}_fig2b_syn_red_grid.png")

    # stages si, gain, uniformity
    def sweep_json(self, study: str) -> Path:
        return self._p(f"sweeps/{study}", f"{self.slug}.json")

    def sweep_npz(self, study: str) -> Path:
        return self._p(f"sweeps/{study}", f"{self.slug}.npz")

    def sweep_metrics(self, study: str) -> Path:
        return self._p(f"sweeps/{study}", f"{self.slug}_metrics.json")

    # stage ablate
    @property
    def ablation_csv(self) -> Path:
        return self._p("ablation", f"{self.slug}_ablation.csv")

    @property
    def ablation_npz(self) -> Path:
        return self._p("ablation", f"{self.slug}_ablation.npz")

    @property
    def ablation_metrics(self) -> Path:
        return self._p("ablation", f"{self.slug}_ablation_metrics.json")

    @property
    def ablation_fig(self) -> Path:
        return self._p("ablation", f"{self.slug}_fig4a_ablation.png")

    # stage graph_cores
    @property
    def graph_cores_npz(self) -> Path:
        return self._p("graph_cores", f"{self.slug}_graph_cores.npz")

    @property
    def graph_cores_metrics(self) -> Path:
        return self._p("graph_cores", f"{self.slug}_graph_metrics.json")

    @property
    def graph_cores_fig(self) -> Path:
        return self._p("graph_cores", f"{self.slug}_fig3b_graph_cores.png")

    # stage perturb
    @property
    def perturb_dir(self) -> Path:
        return self._p("perturb", self.slug)

    @property
    def perturb_metrics(self) -> Path:
        return self._p("perturb", f"{self.slug}_perturb_metrics.json")

    @property
    def perturb_fig(self) -> Path:
        return self._p("perturb", f"{self.slug}_fig4b.png")

    # stage attribute
    @property
    def graphs_dir(self) -> Path:
        """One attribution graph per prompt: <graphs_dir>/<task>/<task>-<i>.json."""
        return RESULTS / "graphs" / self.slug

    @property
    def attribution_quality_csv(self) -> Path:
        return self._p("attribution", f"{self.slug}_quality.csv")

    @property
    def attribution_metrics(self) -> Path:
        return self._p("attribution", f"{self.slug}_attribution_metrics.json")

    @property
    def attribution_fig(self) -> Path:
        return self._p("attribution", f"{self.slug}_quality.png")


def model_paths(key: str) -> ModelPaths:
    return ModelPaths(model_slug(key))


class LadderPaths:
    """Files of the stages that read every model of the ladder."""

    compare_profiles_json = RESULTS / "compare_profiles" / "layer_profiles.json"
    compare_profiles_fig = RESULTS / "compare_profiles" / "fig2c_layer_profiles.png"
    ablate_compare_json = RESULTS / "ablate_compare" / "ablation_summary.json"
    ablate_compare_fig = RESULTS / "ablate_compare" / "fig4a_overlay.png"

    @staticmethod
    def verdict_json(study: str) -> Path:
        return RESULTS / "verdicts" / f"{study}_verdict.json"

    @staticmethod
    def verdict_fig(name: str) -> Path:
        return RESULTS / "figures" / "sweeps" / f"{name}.png"


class MotifPaths:
    """The motif study: one census folder per graph set, one scale-analysis folder.

    Graph sets: each model of the ladder (named by its slug; graphs from stage attribute under
    results/graphs/<slug>) and the imported sets named in motifs.graph_sets (under
    motifs.graphs_dir)."""

    scale_dir = RESULTS / "motifs" / "scale"
    CENSUS_FILES = ("census.csv", "census.json", "null_counts.npz")
    SCALE_FILES = ("profiles.npz", "trends.csv", "transitions.csv", "baseline.csv")
    SCALE_METRICS = "scale_analysis.json"

    @staticmethod
    def graph_sets(models, graphs_dir: str | Path, imported) -> dict[str, Path]:
        """{graph set name: its graphs folder}: the ladder's models first, then imported sets."""
        sets = {model_slug(k): ModelPaths(model_slug(k)).graphs_dir for k in models}
        sets.update({name: Path(graphs_dir) / name for name in imported})
        return sets

    @staticmethod
    def census_dir(graph_set: str) -> Path:
        return RESULTS / "motifs" / "census" / graph_set

    @classmethod
    def census_json(cls, graph_set: str) -> Path:
        return cls.census_dir(graph_set) / "census.json"


class ReportPaths:
    """The one-page report of stage report."""

    index = RESULTS / "report" / "index.html"


def require_input(path: str | Path, stage: str, model: str | None = None) -> Path:
    """The one check for a missing upstream output: a one-line error naming the stage to run."""
    path = Path(path)
    if path.exists():
        return path
    target = f"{stage}@{model_slug(model)}" if model else stage
    how = (f"`python stages/{stage}.py --model {model}`" if model
           else f"`python stages/{stage}.py`")
    raise MissingInputError(f"{path} not found: run `dvc repro {target}` (or {how}) first")
