"""What each params.yaml value may be: one table, checked when a stage starts, before any work.

`RULES` maps every leaf key (dotted path; `*` for the entries of a mapping) to a rule: a range,
a set of choices, a pattern, a non-empty list, a plain name, a path inside the repository. A
test checks the table covers every leaf of the schema, so a new key cannot skip validation.
`validate` then checks what spans keys (min_new_tokens <= max_new_tokens, a prompt_set that
`prompts` defines, the baseline among the graph sets, model keys and their slugs). Each problem
is one line naming the key path, the value and what would work.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path


class RuleError(ValueError):
    pass


Check = Callable[[object, str, Path], None]


def _fmt(value) -> str:
    return repr(value)


def at_least(lo: float, *, open_: bool = False) -> Check:
    def check(v, path, root):
        if isinstance(v, float) and not math.isfinite(v):
            raise RuleError(f"{path}: {_fmt(v)} is not a finite number")
        if v < lo or (open_ and v == lo):
            raise RuleError(f"{path}: {_fmt(v)} must be {'>' if open_ else '>='} {lo}")
    return check


def between(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Check:
    def check(v, path, root):
        if isinstance(v, float) and not math.isfinite(v):
            raise RuleError(f"{path}: {_fmt(v)} is not a finite number")
        bad = v < lo or v > hi or (lo_open and v == lo) or (hi_open and v == hi)
        if bad:
            left, right = "(" if lo_open else "[", ")" if hi_open else "]"
            raise RuleError(f"{path}: {_fmt(v)} must lie in {left}{lo}, {hi}{right}")
    return check


def one_of(*choices: str) -> Check:
    def check(v, path, root):
        if v not in choices:
            raise RuleError(f"{path}: {_fmt(v)} is not one of {', '.join(choices)}")
    return check


def pattern(regex: str, what: str) -> Check:
    compiled = re.compile(regex)

    def check(v, path, root):
        if not compiled.fullmatch(v):
            raise RuleError(f"{path}: {_fmt(v)} is not {what}")
    return check


def non_empty(check_each: Check | None = None, *, min_len: int = 1) -> Check:
    def check(v, path, root):
        if len(v) < min_len:
            raise RuleError(f"{path}: needs at least {min_len} "
                            f"{'entry' if min_len == 1 else 'entries'}, got {_fmt(v)}")
        if check_each is not None:
            for i, item in enumerate(v):
                check_each(item, f"{path}[{i}]", root)
    return check


def each(check_each: Check) -> Check:
    return non_empty(check_each, min_len=0)


def any_value(v, path, root) -> None:
    """Any value of the declared type (booleans, free text)."""


def plain_name(v, path, root) -> None:
    """One folder or file name: no separator, not '.' or '..' (it must not leave its folder)."""
    if not v or v in (".", "..") or "/" in v or "\\" in v:
        raise RuleError(f"{path}: {_fmt(v)} must be a plain folder name (no '/', not '..')")


def repo_path(kind: str, *, optional: bool = False) -> Check:
    """A path that exists (`kind` file or dir) inside the repository, unless given absolute."""
    def check(v, path, root):
        if optional and v == "":
            return
        p = Path(v)
        if not p.is_absolute():
            resolved = (root / p).resolve()
            if not resolved.is_relative_to(root.resolve()):
                raise RuleError(f"{path}: {_fmt(v)} leaves the repository; give a path inside "
                                f"it or an absolute path")
            p = resolved
        ok = p.is_file() if kind == "file" else p.is_dir()
        if not ok:
            raise RuleError(f"{path}: {_fmt(v)}: no such {'file' if kind == 'file' else 'folder'}"
                            f" ({p})")
    return check


SEED = at_least(0)
POSITIVE_INT = at_least(1)
N_BOOT = at_least(2)  # a percentile interval needs replicates
DTYPES = ("float32", "fp32", "float16", "fp16", "bfloat16", "bf16")
MD5 = pattern(r"[0-9a-f]{32}", "an MD5 (32 lower-case hex digits)")
DEVICE = pattern(r"auto|cpu|cuda|cuda:\d+|mps",
                 "a device: auto, cpu, cuda, cuda:<index> or mps")

RULES: dict[str, Check] = {
    "models": any_value,  # checked in validate(): keys and their slugs
    "seed": SEED,
    "device": DEVICE,
    "dtype.cpu": one_of(*DTYPES),
    "dtype.cuda": one_of(*DTYPES),
    "prompts.*.set": pattern(r".+", "a prompt set name or json path"),
    "prompts.*.md5": MD5,
    "extract.prompt_set": any_value,  # a key of prompts: validate()
    "extract.max_new_tokens": POSITIVE_INT,
    "extract.min_new_tokens": at_least(0),
    "extract.batch_size": POSITIVE_INT,
    "extract.chat_template": any_value,
    "phiid.estimator": one_of("gaussian", "discrete"),
    "phiid.redundancy": one_of("MMI", "CCS"),
    "phiid.tau": POSITIVE_INT,
    "phiid.shards": POSITIVE_INT,
    "phiid.chunk_pairs": at_least(0),
    "phiid.return_atoms": any_value,
    "si.prompt_set": any_value,
    "si.max_length": POSITIVE_INT,
    "si.seeds": non_empty(SEED),
    "si.n_boot": N_BOOT,
    "si.boot_seed": SEED,
    "si.dtype_order": non_empty(one_of("bf16", "fp16", "fp32")),
    "si.cpu_dtype_order": non_empty(one_of("bf16", "fp16", "fp32")),
    "si.sanity_threshold": at_least(0, open_=True),
    "si.target": between(0, 1),
    "si.tolerance": at_least(0),
    "si.min_models": POSITIVE_INT,
    "si.references.*.si": between(0, 1),
    "si.references.*.size_b": at_least(0, open_=True),
    "si.references.*.arch": any_value,
    "gain.prompt_set": any_value,
    "gain.n_boot": N_BOOT,
    "gain.n_perm": POSITIVE_INT,
    "gain.boot_seed": SEED,
    "gain.rho_threshold": at_least(0, open_=True),
    "gain.cuda_dtype": one_of("", *DTYPES),
    "uniformity.dataset": repo_path("file"),
    "uniformity.layer_step": POSITIVE_INT,
    "uniformity.n_boot": N_BOOT,
    "uniformity.boot_seed": SEED,
    "uniformity.peak_std_threshold_pct": at_least(0, open_=True),
    "gain.batch_size": POSITIVE_INT,
    "uniformity.batch_size": POSITIVE_INT,
    "uniformity.skip_first": one_of("bos", "always"),
    "uniformity.cuda_dtype": one_of("", *DTYPES),
    "sigma": at_least(0),
    "ablation.prompt_set": any_value,
    "ablation.n_prompts": at_least(0),
    "ablation.step_size": at_least(0),
    "ablation.n_points": POSITIVE_INT,
    "ablation.random_seeds": non_empty(SEED, min_len=2),
    "ablation.batch_size": POSITIVE_INT,
    "graph_cores.top_pct": between(0, 1, lo_open=True),
    "graph_cores.louvain_seed": SEED,
    "perturb.fraction": between(0, 1, lo_open=True, hi_open=True),
    "perturb.random_seeds": non_empty(SEED),
    "perturb.noise_seeds": non_empty(SEED),
    "perturb.benchmark": one_of("arithmetic", "math"),
    "perturb.n_problems": POSITIVE_INT,
    "perturb.n_shots": at_least(0),
    "perturb.max_new_tokens": POSITIVE_INT,
    "perturb.batch_size": POSITIVE_INT,
    "perturb.problem_seed": SEED,
    "perturb.arithmetic_low": at_least(0),
    "perturb.arithmetic_high": at_least(0),
    "perturb.arithmetic_format": one_of("equation", "qa"),
    "perturb.accuracy_floor": between(0, 1),
    "perturb.accuracy_ceiling": between(0, 1),
    "perturb.min_problems": POSITIVE_INT,
    "perturb.math_path": any_value,  # a file, folder or cached dataset name: checked by the stage
    "perturb.math_split": pattern(r".+", "a split name"),
    "perturb.math_config": pattern(r"[\w.-]*", "a config name (letters, digits, _ . -) or empty"),
    "motifs.graphs_dir": repo_path("dir"),
    "motifs.graph_sets": each(plain_name),
    "motifs.baseline": any_value,  # "" or one of graph_sets: validate()
    "motifs.null_model": non_empty(one_of("config", "er", "layer")),
    "motifs.n_random": at_least(2),  # a Z-score needs the spread of at least two nulls
    "motifs.swaps_per_edge": at_least(0, open_=True),
    "motifs.drop_error_nodes": any_value,
    "motifs.weight_threshold": at_least(0),
    "motifs.z_threshold": at_least(0, open_=True),
    "motifs.min_effect_size": at_least(0, open_=True),
    "motifs.alpha": between(0, 1, lo_open=True, hi_open=True),
    "motifs.n_jobs": POSITIVE_INT,
    "attribution.prompt_set": any_value,  # a key of prompts: validate()
    "attribution.n_per_task": at_least(0),
    "attribution.max_logits": POSITIVE_INT,
    "attribution.logit_prob": between(0, 1, lo_open=True),
    "attribution.max_feature_nodes": at_least(0),
    "attribution.row_gflop_budget": at_least(0),
    "attribution.batch_size": POSITIVE_INT,
    "attribution.update_interval": POSITIVE_INT,
    "attribution.row_top_k": POSITIVE_INT,
    "attribution.node_threshold": between(0, 1, lo_open=True),
    "attribution.edge_threshold": between(0, 1, lo_open=True),
    "attribution.max_nodes": at_least(0),
    "attribution.ablation": one_of("zero", "mean"),
    "attribution.random_seed": SEED,
    "attribution.max_completeness_error": at_least(0, open_=True),
}


MAPPINGS = ("prompts", "si.references")  # mappings whose entries share one rule ('*')


def leaves(obj, rule_prefix: str = "", shown: str = "") -> Iterator[tuple[str, str, object]]:
    """(rule path, concrete key path, value) for every leaf of a params object."""
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            sub = f"{rule_prefix}.{f.name}" if rule_prefix else f.name
            show = f"{shown}.{f.name}" if shown else f.name
            yield from leaves(getattr(obj, f.name), sub, show)
    elif isinstance(obj, dict) and rule_prefix in MAPPINGS:
        for key, value in obj.items():
            yield from leaves(value, f"{rule_prefix}.*", f"{shown}.{key}")
    else:
        yield rule_prefix, shown, obj


def check_rules(params, root: Path) -> None:
    """Every leaf against its rule; the error names the concrete key path."""
    for rule_path, shown, value in leaves(params):
        rule = RULES.get(rule_path)
        if rule is None:
            raise AssertionError(f"params key {rule_path} has no rule in params_rules.RULES")
        rule(value, shown, root)


def check_models(models: list[str]) -> None:
    """Each model key has a form load_model accepts; slugs are unique (scalelens.paths)."""
    from scalelens.models.registry import REGISTRY
    from scalelens.models.tiny_configs import TINY_CONFIG_NAMES
    from scalelens.paths import check_unique_slugs, is_local_dir

    if not models:
        raise RuleError("models: the list is empty; name at least one model (a registry key, an "
                        "org/name hub id, a local folder or tiny:<arch>)")
    for i, key in enumerate(models):
        where = f"models[{i}]"
        if key.startswith("tiny:"):
            parts = key.split(":")
            if len(parts) > 3 or parts[1] not in TINY_CONFIG_NAMES or (
                    len(parts) == 3 and not parts[2].isdigit()):
                raise RuleError(f"{where}: {key!r} is not tiny:<arch>[:<seed>] with an arch of "
                                f"{', '.join(TINY_CONFIG_NAMES)} and an integer seed")
        elif key not in REGISTRY and "/" not in key and not is_local_dir(key):
            known = ", ".join(sorted(REGISTRY))
            raise RuleError(f"{where}: unknown model key {key!r}: not a registry key ({known}), "
                            f"an org/name hub id, an existing folder or tiny:<arch>")
    try:
        check_unique_slugs(models)
    except Exception as e:  # ScalelensError from paths
        raise RuleError(f"models: {e}") from None


def validate(params, root: Path) -> None:
    """All rules, then what spans keys. Raises RuleError with one line."""
    check_rules(params, root)
    check_models(params.models)
    for section in ("extract", "si", "gain", "ablation", "attribution"):
        key = getattr(params, section).prompt_set
        if key not in params.prompts:
            raise RuleError(f"{section}.prompt_set: {key!r} is not a key of prompts "
                            f"({', '.join(params.prompts) or 'none defined'})")
    x = params.extract
    if x.min_new_tokens > x.max_new_tokens:
        raise RuleError(f"extract.min_new_tokens: {x.min_new_tokens} exceeds "
                        f"extract.max_new_tokens {x.max_new_tokens}")
    pt = params.perturb
    if pt.arithmetic_low > pt.arithmetic_high:
        raise RuleError(f"perturb.arithmetic_low: {pt.arithmetic_low} exceeds "
                        f"perturb.arithmetic_high {pt.arithmetic_high}")
    if pt.benchmark == "arithmetic":
        n_pairs = (pt.arithmetic_high - pt.arithmetic_low + 1) ** 2
        if pt.n_problems + pt.n_shots > n_pairs:
            raise RuleError(f"perturb.n_problems: {pt.n_problems} problems + {pt.n_shots} shots "
                            f"exceed the {n_pairs} distinct operand pairs of "
                            f"{pt.arithmetic_low}..{pt.arithmetic_high}")
    if pt.accuracy_floor > pt.accuracy_ceiling:
        raise RuleError(f"perturb.accuracy_floor: {pt.accuracy_floor} exceeds "
                        f"perturb.accuracy_ceiling {pt.accuracy_ceiling}")
    for key in ("random_seeds", "noise_seeds"):
        seeds = getattr(pt, key)
        if len(set(seeds)) != len(seeds):
            raise RuleError(f"perturb.{key}: {seeds} lists a seed twice (replicates would repeat)")
    if pt.benchmark == "math" and not pt.math_path:
        raise RuleError("perturb.math_path: empty, but perturb.benchmark is math; give a .jsonl/"
                        ".json/.parquet file or a cached Hugging Face dataset name")
    m = params.motifs
    if m.baseline and m.baseline not in m.graph_sets:
        raise RuleError(f"motifs.baseline: {m.baseline!r} is not one of motifs.graph_sets "
                        f"({', '.join(m.graph_sets)})")
    if len(set(m.graph_sets)) != len(m.graph_sets):
        raise RuleError(f"motifs.graph_sets: {m.graph_sets} lists a graph set twice")
    if len(set(m.null_model)) != len(m.null_model):
        raise RuleError(f"motifs.null_model: {m.null_model} lists a null model twice")
    from scalelens.paths import model_slug

    clash = sorted(set(m.graph_sets) & {model_slug(k) for k in params.models})
    if clash:
        raise RuleError(f"motifs.graph_sets: {clash} share a name with a model of the ladder, "
                        f"whose graphs stage attribute builds; rename the imported folder")
    graphs_dir = Path(m.graphs_dir) if Path(m.graphs_dir).is_absolute() else root / m.graphs_dir
    for name in m.graph_sets:
        if not (graphs_dir / name).is_dir():
            raise RuleError(f"motifs.graph_sets: no folder {name!r} under motifs.graphs_dir "
                            f"({graphs_dir})")
