"""What every stage entry point shares: argument parsing, logging, one-line errors, clean outs.

A stage's `main(ctx)` receives the parsed params and the model key; it declares its outputs with
`ctx.out(path)`. If it fails with an error a user can act on (ScalelensError, a bad params.yaml, a
missing file), the message is printed on one line, every declared output is removed so nothing
half-written is left in results/, and the process exits with status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scalelens.errors import ScalelensError
from scalelens.params import Params, load_params, params_sha256
from scalelens.paths import ModelPaths, model_paths, require_input

log = logging.getLogger("scalelens.stage")


@dataclass
class StageContext:
    name: str
    params: Params
    params_path: Path
    model: str | None
    args: argparse.Namespace
    outs: list[Path] = field(default_factory=list)

    def out(self, path: str | Path) -> Path:
        """Declare an output (removed if the stage fails); its folder is created."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        self.outs.append(p)
        return p

    @property
    def paths(self) -> ModelPaths:
        """Every per-model result path of this stage's model (scalelens.paths)."""
        return model_paths(self.model)

    def input(self, path: str | Path, stage: str, model: str | None = None) -> Path:
        """An upstream output this stage reads; a one-line error naming `stage` when missing.

        `model` defaults to this stage's model; cross-model stages pass each model in turn."""
        return require_input(path, stage, model if model is not None else self.model)

    @property
    def params_sha256(self) -> str:
        return params_sha256(self.params_path)

    def load_model(self):
        """The stage's model on params' device, in params' dtype for that device, after seeding
        torch with params' seed. Returns (LoadedModel, device type, dtype name)."""
        import torch

        from scalelens.models import load_model
        from scalelens.models.loading import resolve_device

        torch.manual_seed(self.params.seed)
        device = resolve_device(self.params.device)
        dtype = self.params.dtype_for(device.type)
        lm = load_model(self.model, dtype=dtype, device=str(device))
        return lm, device.type, dtype


def _quiet_libraries() -> None:
    """Third-party chatter (deprecations, tokenizer notices) would bury the stage's own log.

    transformers reads these variables when a stage first imports it; importing it here would
    cost every stage seconds, the verdict stages included, which never load a model."""
    warnings.filterwarnings("ignore")
    for var, value in (("TOKENIZERS_PARALLELISM", "false"), ("TRANSFORMERS_VERBOSITY", "error"),
                       ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                       ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")):
        os.environ.setdefault(var, value)
    for name in ("mlflow", "alembic", "urllib3", "filelock"):
        logging.getLogger(name).setLevel(logging.WARNING)


def run_stage(name: str, main: Callable[[StageContext], None], per_model: bool = True,
              add_args: Callable[[argparse.ArgumentParser], None] | None = None,
              model_keys: Callable[[Params], list[str]] | None = None,
              keys_name: str = "models") -> None:
    """Parse arguments, load params, run main(ctx); one-line errors, outputs removed on failure.

    model_keys: where --model must come from (default: params `models`), named keys_name.
    """
    parser = argparse.ArgumentParser(prog=f"stages/{name}.py")
    if per_model:
        parser.add_argument("--model", required=True, help="a model key listed in params.yaml")
    parser.add_argument("--params", default="params.yaml")
    if add_args:
        add_args(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    ctx = None
    try:
        _quiet_libraries()
        params = load_params(args.params)
        model = getattr(args, "model", None)
        allowed = model_keys(params) if model_keys else params.models
        if model is not None and model not in allowed:
            raise ScalelensError(
                f"--model {model!r} is not in params.yaml {keys_name} ({', '.join(allowed)})")
        ctx = StageContext(name, params, Path(args.params), model, args)
        main(ctx)
    except (ScalelensError, FileNotFoundError) as e:
        _remove_outs(ctx)
        print(f"{name}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        _remove_outs(ctx)
        print(f"{name}: interrupted", file=sys.stderr)
        sys.exit(130)
    except BaseException:
        _remove_outs(ctx)
        raise


def read_upstream_json(path: str | Path, stage: str, model: str) -> dict:
    """A json another stage wrote for `model`; a one-line error naming how to produce it."""
    import json

    return json.loads(require_input(path, stage, model).read_text(encoding="utf-8"))


def _remove_outs(ctx: StageContext | None) -> None:
    if ctx is None:
        return
    for p in ctx.outs:
        if p.is_file():
            p.unlink()
