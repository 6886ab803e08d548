"""params.yaml, the only source of knobs: one typed loader that names the key path of any mistake.

Each section is a frozen dataclass; unknown keys and wrong types are errors that name the path
(`extract.batch_size: expected int, got str '16'`). Stages read their section from here and log it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from scalelens.errors import ScalelensError


class ParamsError(ScalelensError):
    pass


@dataclass(frozen=True)
class PromptLock:
    set: str  # a built-in set name or a path to a json prompt file
    md5: str


@dataclass(frozen=True)
class DtypeByDevice:
    cpu: str = "float32"
    cuda: str = "bfloat16"


@dataclass(frozen=True)
class ExtractParams:
    prompt_set: str = "cognitive_tasks"  # a key of `prompts`
    max_new_tokens: int = 64
    min_new_tokens: int = 64  # = max_new_tokens: every series has the full length
    batch_size: int = 64
    chat_template: bool = False  # the seeds apply none; instruct models may still be asked to


@dataclass(frozen=True)
class PhiidParams:
    estimator: str = "gaussian"  # gaussian | discrete
    redundancy: str = "MMI"  # MMI | CCS
    tau: int = 1
    shards: int = 1  # split the pairs into this many shards (SLURM: one job each)
    chunk_pairs: int = 0  # pairs per chunk; 0 = automatic
    return_atoms: bool = False


@dataclass(frozen=True)
class SIReference:
    si: float
    size_b: float
    arch: str = ""


@dataclass(frozen=True)
class SIParams:
    prompt_set: str = "standard10_v3"
    max_length: int = 128
    seeds: list[int] = field(default_factory=lambda: [42, 123, 456])
    n_boot: int = 1000
    boot_seed: int = 0
    dtype_order: list[str] = field(default_factory=lambda: ["bf16", "fp16", "fp32"])  # on CUDA
    # on a CPU bf16 and fp16 run 2.5-3x slower than fp32 and are less exact: fp32 alone
    cpu_dtype_order: list[str] = field(default_factory=lambda: ["fp32"])
    sanity_threshold: float = 0.05
    target: float = 0.33
    tolerance: float = 0.05
    min_models: int = 4
    references: dict[str, SIReference] = field(default_factory=dict)


@dataclass(frozen=True)
class GainParams:
    prompt_set: str = "residual_gain_25"
    n_boot: int = 1000
    n_perm: int = 10000
    boot_seed: int = 0
    rho_threshold: float = 0.2
    batch_size: int = 8  # prompts per right-padded forward pass, similar lengths together (speed)
    # on CUDA: the seed's float16 (bf16's 8-bit mantissa can flip G < 1 near 1.0); "" = dtype.cuda
    cuda_dtype: str = "float16"


@dataclass(frozen=True)
class UniformityParams:
    dataset: str = "data/statements/default_pairs.json"
    layer_step: int = 4
    n_boot: int = 1000
    boot_seed: int = 0
    peak_std_threshold_pct: float = 10.0
    batch_size: int = 16  # statements per padded forward pass (speed only)
    # mean pooling skips position 0: "bos" only when it is the BOS token; "always" (seed 003)
    skip_first: str = "bos"
    cuda_dtype: str = "float16"  # on CUDA: the seed's float16; "" = dtype.cuda


@dataclass(frozen=True)
class AblationParams:
    prompt_set: str = "cognitive_tasks"  # a key of `prompts` (the synergy study's set)
    n_prompts: int = 8  # prompts taken round-robin over categories; 0 = all
    step_size: int = 0  # heads removed between KL points; 0 = ceil(n_heads / n_points)
    n_points: int = 10  # KL points per curve when step_size is 0
    random_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])  # one random order each
    batch_size: int = 16


@dataclass(frozen=True)
class GraphCoresParams:
    top_pct: float = 0.10  # fraction of the strongest upper-triangle pairs kept as edges
    louvain_seed: int = 0


@dataclass(frozen=True)
class PerturbParams:
    fraction: float = 0.25  # share of heads in each core / random set
    random_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])  # random head sets
    # noise draws: each core once per seed; the i-th random set under seed i mod len
    noise_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    benchmark: str = "arithmetic"  # arithmetic | math
    n_problems: int = 50
    n_shots: int = 3
    max_new_tokens: int = 4  # enough for a sum; raise it for math
    batch_size: int = 50  # problems per forward pass (speed only)
    problem_seed: int = 0  # which problems (arithmetic draws; math shuffle)
    arithmetic_low: int = 1  # arithmetic operand range
    arithmetic_high: int = 20
    arithmetic_format: str = "equation"  # "13 + 5 = 18" | qa: "Q: 13 + 5 = ?\nA: 18"
    accuracy_floor: float = 0.2  # accuracy verdict UNINFORMATIVE below this baseline accuracy...
    accuracy_ceiling: float = 0.95  # ...and above this one
    min_problems: int = 50  # ...and with fewer problems (one problem <= 1/min_problems)
    math_path: str = ""  # math: a file, a folder of files, or a cached Hugging Face dataset name
    math_split: str = "test"  # split of a folder / cached dataset
    math_config: str = ""  # config (sub-folder) of a folder / cached dataset; "" = all


@dataclass(frozen=True)
class AttributionParams:
    """Stage attribute: one exact neuron-level attribution graph per prompt (attribution)."""

    prompt_set: str = "attribution_tasks"  # a key of `prompts`; categories are the tasks
    n_per_task: int = 0  # prompts per task, in file order; 0 = all
    max_logits: int = 10
    logit_prob: float = 0.95
    max_feature_nodes: int = 384  # unit rows expanded per graph, at most
    row_gflop_budget: float = 0.0  # cap on the rows' cost per graph (GFLOP); 0 = no cap
    batch_size: int = 64  # rows per batched backward pass
    update_interval: int = 2
    row_top_k: int = 1024  # unit entries kept per row (its exact sum and mass are kept too)
    node_threshold: float = 0.8
    edge_threshold: float = 0.98
    max_nodes: int = 1000  # units kept after pruning, at most (0 = no cap)
    ablation: str = "zero"  # faithfulness: units outside the graph set to zero | their mean
    random_seed: int = 0  # the random unit set of the faithfulness baseline
    max_completeness_error: float = 0.01


@dataclass(frozen=True)
class MotifParams:
    graphs_dir: str = "data/graphs"  # imported graph sets (Neuronpedia exports, baselines)
    # imported sets under graphs_dir (one folder each) censused beside the ladder's own graphs
    # (stage attribute); a set named synthetic-* is marked SYNTHETIC in every output
    graph_sets: list[str] = field(default_factory=list)
    baseline: str = ""  # an imported set compared beside the models, not a scale point; "" = none
    null_model: list[str] = field(default_factory=lambda: ["config", "layer"])  # config|er|layer
    n_random: int = 100
    swaps_per_edge: float = 10.0
    drop_error_nodes: bool = True
    weight_threshold: float = 0.0
    z_threshold: float = 2.0
    min_effect_size: float = 1.0  # Cohen's d for a phase transition
    alpha: float = 0.05
    n_jobs: int = 2


@dataclass(frozen=True)
class Params:
    models: list[str]
    seed: int = 0
    device: str = "auto"
    dtype: DtypeByDevice = field(default_factory=DtypeByDevice)
    prompts: dict[str, PromptLock] = field(default_factory=dict)
    extract: ExtractParams = field(default_factory=ExtractParams)
    phiid: PhiidParams = field(default_factory=PhiidParams)
    si: SIParams = field(default_factory=SIParams)
    gain: GainParams = field(default_factory=GainParams)
    uniformity: UniformityParams = field(default_factory=UniformityParams)
    motifs: MotifParams = field(default_factory=MotifParams)
    sigma: float = 0.1  # weight-noise std / weight std (stage perturb); `dvc exp run -S sigma=..`
    ablation: AblationParams = field(default_factory=AblationParams)
    graph_cores: GraphCoresParams = field(default_factory=GraphCoresParams)
    perturb: PerturbParams = field(default_factory=PerturbParams)
    attribution: AttributionParams = field(default_factory=AttributionParams)

    def prompt_lock(self, key: str) -> PromptLock:
        try:
            return self.prompts[key]
        except KeyError:
            raise ParamsError(
                f"prompts.{key}: no such prompt set in params.yaml; defined: "
                f"{', '.join(self.prompts) or 'none'}"
            ) from None

    def dtype_for(self, device_type: str) -> str:
        return self.dtype.cuda if device_type == "cuda" else self.dtype.cpu


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp)


def _coerce(value, tp, path: str):
    """Check value against the annotation tp, recursing into dataclasses, lists and dicts."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for alt in typing.get_args(tp):
            if alt is type(None) and value is None:
                return None
            try:
                return _coerce(value, alt, path)
            except ParamsError as e:
                errors.append(str(e))
        raise ParamsError(errors[0])
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ParamsError(f"{path}: expected a list, got {type(value).__name__} {value!r}")
        return [_coerce(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, val_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ParamsError(f"{path}: expected a mapping, got {type(value).__name__} {value!r}")
        return {str(k): _coerce(v, val_tp, f"{path}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{path}: expected float, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{path}: expected int, got {type(value).__name__} {value!r}")
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            got = type(value).__name__
            raise ParamsError(f"{path}: expected {tp.__name__}, got {got} {value!r}")
        return value
    raise TypeError(f"params schema uses an unsupported type {_type_name(tp)} at {path}")


def _build(cls, data, path: str):
    if not isinstance(data, dict):
        raise ParamsError(f"{path or 'params'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{path}." if path else ""
        raise ParamsError(
            f"{where}{unknown[0]}: unknown key; allowed here: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, f in fields.items():
        sub = f"{path}.{name}" if path else name
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ParamsError(f"{sub}: missing required key")
    return cls(**kwargs)


def parse_params(data: dict) -> Params:
    """Types and keys only; `load_params` also validates every value (params_rules)."""
    return _build(Params, data, "")


def validate_params(params: Params, root: str | Path) -> Params:
    """Every value against scalelens.params_rules, paths relative to `root` (the repository)."""
    from scalelens.params_rules import RuleError, validate

    try:
        validate(params, Path(root))
    except RuleError as e:
        raise ParamsError(str(e)) from None
    return params


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (PyYAML keeps the last one)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ParamsError(
                    f"{key!r} is given twice (lines {seen[key] + 1} and "
                    f"{key_node.start_mark.line + 1}); YAML would silently keep the second")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read, type-check and validate params.yaml (unknown keys, wrong types, out-of-range values,
    duplicate keys: one line naming the key path)."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found (run from the repository root)")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except ParamsError as e:
        raise ParamsError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML: {e}".replace("\n", " ")) from None
    return validate_params(parse_params(data or {}), path.resolve().parent)


def params_sha256(path: str | Path = "params.yaml") -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def as_flat_dict(obj, prefix: str = "") -> dict[str, object]:
    """A section as dotted keys, for logging as MLflow params."""
    out: dict[str, object] = {}
    items = dataclasses.asdict(obj).items() if dataclasses.is_dataclass(obj) else obj.items()
    for k, v in items:
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(as_flat_dict(v, key + "."))
        else:
            out[key] = v
    return out
