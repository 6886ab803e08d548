"""What every stage entry point shares: arguments, logging, one-line errors, outputs swapped in.

A stage's `main(ctx)` receives the parsed params and the model key and declares its outputs with
`ctx.out(path)` (a file) or `ctx.out_dir(path)` (a folder written whole). Under `run_stage` each
declared output is written aside, beside its final place, and all of them are swapped in only
when `main` has returned: an error, Ctrl-C or SIGTERM (what a scheduler sends at a time limit)
leaves the previous good outputs exactly as they were and no partial new ones. An error a user
can act on (ScalelensError, a bad params.yaml, a missing file) is one line on stderr and exit
status 2; an interrupt exits 130, SIGTERM 143. The stage's MLflow run spans its whole work and is
marked FINISHED, FAILED or KILLED.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scalelens.errors import ScalelensError
from scalelens.params import Params, load_params, params_sha256
from scalelens.paths import ModelPaths, model_paths, require_input

log = logging.getLogger("scalelens.stage")

STAGING_PREFIX = ".staging-"


class StageTerminated(BaseException):
    """SIGTERM arrived (a scheduler's time limit): handled like Ctrl-C."""


def _staged_name(final: Path) -> Path:
    """Where an output is written before it is swapped in: a hidden sibling that keeps the
    file's extension (savefig and friends read the format from it)."""
    return final.with_name(f"{STAGING_PREFIX}{os.getpid()}-{final.name}")


@dataclass
class StageContext:
    name: str
    params: Params
    params_path: Path
    model: str | None
    args: argparse.Namespace
    outs: list[Path] = field(default_factory=list)
    staged: bool = False  # run_stage sets it: outputs are written aside and swapped in at the end
    _staging: dict[Path, Path] = field(default_factory=dict)

    def out(self, path: str | Path) -> Path:
        """Declare an output file; returns the path to write it to (its folder is created)."""
        final = Path(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        self.outs.append(final)
        if not self.staged:
            return final
        target = _staged_name(final)
        self._staging[final] = target
        return target

    def out_dir(self, path: str | Path) -> Path:
        """Declare an output folder, replaced as a whole (files of an earlier run that this run
        does not write do not survive in it); returns the folder to write into."""
        final = Path(path)
        if not self.staged:
            final.mkdir(parents=True, exist_ok=True)
            self.outs.append(final)
            return final
        target = self.out(final)
        target.mkdir(parents=True, exist_ok=True)
        return target

    def commit_outputs(self) -> None:
        """Swap every staged output in (all were complete before the first is moved)."""
        missing = [str(f) for f, t in self._staging.items() if not t.exists()]
        if missing:
            raise RuntimeError(f"stage {self.name} declared outputs it did not write: "
                               f"{', '.join(missing)}")
        for final, target in self._staging.items():
            if target.is_dir():
                old = final.with_name(f"{STAGING_PREFIX}{os.getpid()}-old-{final.name}")
                if final.exists():
                    os.replace(final, old)
                os.replace(target, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(target, final)
        self._staging.clear()

    def discard_outputs(self) -> None:
        """Remove what this run wrote aside; the previous outputs are untouched."""
        for target in self._staging.values():
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
        self._staging.clear()

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

    def load_model(self, cuda_dtype: str = ""):
        """The stage's model on params' device, in params' dtype for that device (on CUDA the
        study's own `cuda_dtype` when it names one), after seeding torch with params' seed.
        Returns (LoadedModel, device type, dtype name)."""
        import torch

        from scalelens.models.loading import load_model, resolve_device

        torch.manual_seed(self.params.seed)
        device = resolve_device(self.params.device)
        dtype = self.params.dtype_for(device.type)
        if device.type == "cuda" and cuda_dtype:
            dtype = cuda_dtype
        lm = load_model(self.model, dtype=dtype, device=str(device))
        return lm, device.type, dtype


def _quiet_libraries() -> None:
    """Third-party chatter (deprecations, tokenizer notices) would bury the stage's own log.

    transformers reads these variables when a stage first imports it; importing it here would
    cost every stage seconds, the verdict stages included, which never load a model."""
    warnings.filterwarnings("ignore")
    for var, value in (("TOKENIZERS_PARALLELISM", "false"), ("TRANSFORMERS_VERBOSITY", "error"),
                       ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                       ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1"),
                       ("MLFLOW_LOGGING_LEVEL", "WARNING")):
        os.environ.setdefault(var, value)
    for name in ("mlflow", "alembic", "urllib3", "filelock"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _raise_terminated(signum, frame):
    raise StageTerminated()


def run_stage(name: str, main: Callable[[StageContext], None], per_model: bool = True,
              add_args: Callable[[argparse.ArgumentParser], None] | None = None,
              model_keys: Callable[[Params], list[str]] | None = None,
              keys_name: str = "models") -> None:
    """Parse arguments, load params, run main(ctx) inside its MLflow run; one-line errors;
    outputs swapped in only on success (see the module docstring).

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
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        _run(name, main, args, model_keys, keys_name)
    finally:  # an in-process caller (a test, a notebook) gets its own handler back
        signal.signal(signal.SIGTERM, previous)


def _run(name: str, main: Callable[[StageContext], None], args: argparse.Namespace,
         model_keys: Callable[[Params], list[str]] | None, keys_name: str) -> None:
    ctx = None
    span = None
    try:
        _quiet_libraries()
        params = load_params(args.params)
        model = getattr(args, "model", None)
        allowed = model_keys(params) if model_keys else params.models
        if model is not None and model not in allowed:
            raise ScalelensError(
                f"--model {model!r} is not in params.yaml {keys_name} ({', '.join(allowed)})")
        ctx = StageContext(name, params, Path(args.params), model, args, staged=True)
        from scalelens.tracking import StageSpan

        span = StageSpan(name, model)
        main(ctx)
        span.sync()  # what MLflow could not record fails the stage before its outputs go in
        ctx.commit_outputs()
        span.end("FINISHED")
    except (ScalelensError, FileNotFoundError) as e:
        _abandon(ctx, span, "FAILED")
        print(f"{name}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        _abandon(ctx, span, "KILLED")
        print(f"{name}: interrupted; earlier outputs left as they were", file=sys.stderr)
        sys.exit(130)
    except StageTerminated:
        _abandon(ctx, span, "KILLED")
        print(f"{name}: terminated (SIGTERM); earlier outputs left as they were",
              file=sys.stderr)
        sys.exit(143)
    except BaseException:
        _abandon(ctx, span, "FAILED")
        raise


def _abandon(ctx: StageContext | None, span, status: str) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up
    if ctx is not None:
        ctx.discard_outputs()
    if span is not None:
        from scalelens.tracking import TrackingError

        try:
            span.end(status)
        except TrackingError as e:  # the stage's own error is the one to report
            log.warning("the MLflow run could not be closed as %s: %s", status, e)


def read_upstream_json(path: str | Path, stage: str, model: str) -> dict:
    """A json another stage wrote for `model`; a one-line error naming how to produce it."""
    import json

    return json.loads(require_input(path, stage, model).read_text(encoding="utf-8"))
