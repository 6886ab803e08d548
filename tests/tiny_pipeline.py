"""A copy of the project that runs the whole pipeline on tiny models in seconds per stage.

`make_repo(dest, models)` copies the committed tree (git ls-files) into `dest`, makes it a git
repository, writes a params.yaml for `models` with small sizes and regenerates dvc.yaml, so
`dvc repro` there runs every stage as a user's clone would. Used by the cluster-path, remote,
determinism and SLURM tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tiny_params(models: list[str], **overrides) -> dict:
    """params.yaml for a fast run of every stage on tiny models."""
    p = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    p["models"] = list(models)
    p["device"] = "cpu"
    p["extract"].update(max_new_tokens=12, min_new_tokens=12, batch_size=64)
    p["phiid"].update(chunk_pairs=0)
    p["si"].update(n_boot=50, cpu_dtype_order=["bf16", "fp16", "fp32"])  # tiny: the walk
    p["gain"].update(n_boot=50, n_perm=200)
    p["uniformity"].update(n_boot=50, layer_step=1)
    p["ablation"].update(n_prompts=4, n_points=3, random_seeds=[0, 1], batch_size=8)
    p["perturb"].update(n_problems=4, n_shots=1, max_new_tokens=2, random_seeds=[0, 1],
                        batch_size=8)
    p["motifs"].update(n_random=4, n_jobs=1)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(p.get(key), dict):
            p[key].update(value)
        else:
            p[key] = value
    return p


def env(repo: Path) -> dict:
    """The environment a stage sees: this interpreter first on PATH, the copy's own code,
    MLflow in the repo, and whatever the repo asked for in .tiny-env.json (a hub cache)."""
    import json

    extra_file = Path(repo) / ".tiny-env.json"
    extra = json.loads(extra_file.read_text()) if extra_file.exists() else {}
    out = {**os.environ, **extra, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(Path(repo) / "src"), "SCALELENS_PYTHON": sys.executable,
           "OMP_NUM_THREADS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    out.pop("MLFLOW_TRACKING_URI", None)
    return out


def run(cmd: list[str], cwd: Path, timeout: int = 900, check: bool = True):
    out = subprocess.run(cmd, cwd=cwd, env=env(cwd), capture_output=True, text=True,
                         timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({out.returncode}):\n"
                             f"{out.stdout[-3000:]}\n{out.stderr[-5000:]}")
    return out


def make_repo(dest: Path, models: list[str], **overrides) -> Path:
    """A git + DVC repository at `dest` holding the committed project and a tiny params.yaml."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if not src.is_file():  # deleted in the working tree but still in the index
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    (dest / "dvc.lock").unlink(missing_ok=True)
    (dest / "params.yaml").write_text(yaml.safe_dump(tiny_params(models, **overrides),
                                                     sort_keys=False), encoding="utf-8")
    run([sys.executable, "-m", "scalelens.pipeline"], dest)
    run(["git", "init", "-q"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "tiny pipeline"], dest)
    return dest


def dvc(repo: Path, *args: str, timeout: int = 1800, check: bool = True):
    return run([str(BIN / "dvc"), *args], repo, timeout=timeout, check=check)


HUB_ID = "google/gemma-3-4b-tiny"  # a tiny Gemma 3 multimodal wrapper, as gemma-3-4b-pt loads
LOCAL_NAME = "qwen3-shaped"  # a tiny Qwen3-4B-shaped model in a local checkpoint folder


def prepare_ladder_repo(base: Path) -> tuple[Path, list[str]]:
    """A cluster user's two kinds of key, ready for `dvc repro`: a hub id loaded offline from an
    hf-download-shaped cache and a local checkpoint folder, in a committed tiny-params repository
    (nothing run yet). Returns the repository and its model keys. Its .tiny-env.json makes every
    later command offline."""
    import json

    from hub_cache import save_as_hub_download

    from scalelens.models import load_model

    hf = base / "hf"
    save_as_hub_download(hf, HUB_ID, load_model("tiny:gemma3:3"))
    local = base / "checkpoints" / LOCAL_NAME
    lm = load_model("tiny:qwen3_4b:5")
    lm.model.save_pretrained(local)
    lm.tokenizer.save_pretrained(local)
    models = [HUB_ID, str(local)]
    root = make_repo(base / "repo", models)
    (root / ".tiny-env.json").write_text(json.dumps({"HF_HOME": str(hf), "HF_HUB_OFFLINE": "1"}))
    with open(root / ".git" / "info" / "exclude", "a") as f:
        f.write("/.tiny-env.json\n")
    return root, models


def run_ladder_repo(root: Path) -> None:
    """`dvc repro` of every stage, then the results committed (dvc.lock, the git-tracked metrics
    and DVC's .gitignores)."""
    dvc(root, "repro")
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-q", "-m", "results of the tiny pipeline"], root)


def build_ladder_repo(base: Path) -> tuple[Path, list[str]]:
    """The tiny pipeline prepared and run once with `dvc repro`."""
    root, models = prepare_ladder_repo(base)
    run_ladder_repo(root)
    return root, models


def clone(repo: Path, dest: Path) -> Path:
    """A fresh git clone of `repo` (no results: only what git tracks), offline like it."""
    import shutil

    run(["git", "clone", "-q", str(repo), str(dest)], repo.parent)
    if (repo / ".tiny-env.json").exists():
        shutil.copy2(repo / ".tiny-env.json", dest / ".tiny-env.json")
        with open(dest / ".git" / "info" / "exclude", "a") as f:
            f.write("/.tiny-env.json\n")
    return dest
