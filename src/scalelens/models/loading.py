"""One entry point to get a model: `load_model(key, dtype, device)`.

`key` may be
- a registry key with a packaged GGUF (the embedded default ladder): de-quantised once, then cached
  as safetensors + tokenizer under <cache>/dequant/<gguf sha256>/, so later loads take seconds;
- a registry key without one, or a hub id ("org/name"): from the Hugging Face hub, or offline
  from the local hub cache (HF_HUB_OFFLINE=1), with a message naming the model when it is
  not cached;
- a local directory holding a saved model;
- "tiny:<arch>" or "tiny:<arch>:<seed>": a tiny random model for tests (no download).
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from filelock import FileLock
from transformers import AutoModelForCausalLM, AutoTokenizer

from scalelens.errors import ScalelensError
from scalelens.models.cpu_linear import use_onednn_linear
from scalelens.models.geometry import HeadGeometry, head_geometry
from scalelens.models.packaged import PackagedModelError, cache_root, gguf_path
from scalelens.models.registry import REGISTRY, ModelSpec, get_spec
from scalelens.models.tiny import byte_tokenizer, tiny_model

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
          "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


class ModelLoadError(ScalelensError):
    pass


@dataclass
class LoadedModel:
    key: str
    model: torch.nn.Module
    tokenizer: object
    geometry: HeadGeometry
    spec: ModelSpec | None
    source: str  # "packaged-gguf" | "hub" | "local" | "tiny"
    device: torch.device
    dtype: torch.dtype
    _weights_id: str | None = field(default=None, repr=False)

    @property
    def dequantised(self) -> bool:
        return self.source == "packaged-gguf"

    @property
    def weights_id(self) -> str:
        """sha256 of the weights as loaded (every tensor's name, dtype, shape and bytes, in name
        order): what was run, whatever the source. Computed once (~1 s per GB)."""
        if self._weights_id is None:
            self._weights_id = weights_sha256(self.model)
        return self._weights_id


def weights_sha256(model: torch.nn.Module) -> str:
    """sha256 over the state dict: per tensor its name, dtype, shape and raw bytes (name order;
    tied weights once)."""
    import hashlib

    h = hashlib.sha256()
    seen: set[int] = set()
    for name, tensor in sorted(model.state_dict().items()):
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def resolve_device(device: str) -> torch.device:
    """'auto' is CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but CUDA is not available; use 'auto'")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}") from None


def load_model(key: str, dtype: str | torch.dtype = "float32", device: str = "cpu",
               attn_implementation: str = "eager") -> LoadedModel:
    """Load a causal LM and its tokenizer, in eval mode, with its head geometry."""
    torch_dtype = resolve_dtype(dtype)
    dev = resolve_device(device)
    spec = REGISTRY.get(key)
    if key.startswith("tiny:"):
        model, tok, source = _load_tiny(key, torch_dtype, attn_implementation)
    elif spec is not None and spec.gguf is not None:
        model, tok = _load_packaged(spec, torch_dtype, attn_implementation)
        source = "packaged-gguf"
    elif Path(key).is_dir():
        model, tok = _from_pretrained(key, key, torch_dtype, attn_implementation)
        source = "local"
    elif spec is not None or "/" in key:
        hub_id = spec.hub_id if spec is not None else key
        model, tok = _load_hub(hub_id, torch_dtype, attn_implementation)
        source = "hub"
    else:
        get_spec(key)  # raises the unknown-key error listing the known keys
        raise AssertionError("unreachable")
    model.to(dev)
    model.eval()
    if dev.type == "cpu" and torch_dtype == torch.float32:
        use_onednn_linear(model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return LoadedModel(key, model, tok, head_geometry(model), spec, source, dev, torch_dtype)


def _load_tiny(key: str, dtype: torch.dtype, attn: str):
    parts = key.split(":")
    arch = parts[1] if len(parts) > 1 else ""
    seed = int(parts[2]) if len(parts) > 2 else 0
    try:
        model = tiny_model(arch, seed=seed, dtype=dtype, attn_implementation=attn)
    except ValueError as e:
        raise ModelLoadError(str(e)) from None
    return model, byte_tokenizer(), "tiny"


def _from_pretrained(where: str, name: str, dtype: torch.dtype, attn: str, **kw):
    tok = AutoTokenizer.from_pretrained(where, **kw)
    model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, attn_implementation=attn,
                                                 **kw)
    return model, tok


def _load_hub(hub_id: str, dtype: torch.dtype, attn: str):
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    try:
        return _from_pretrained(hub_id, hub_id, dtype, attn, local_files_only=offline)
    except (OSError, ValueError) as e:
        if offline or "offline" in str(e).lower() or "connect" in str(e).lower():
            raise ModelLoadError(
                f"model {hub_id!r} is not in the local Hugging Face cache "
                f"({os.environ.get('HF_HOME', '~/.cache/huggingface')}) and the hub cannot be "
                f"reached; pre-cache it on a machine with network: "
                f"`hf download {hub_id}` (gated models need HF_TOKEN), then run with "
                f"HF_HUB_OFFLINE=1"
            ) from None
        raise ModelLoadError(f"could not load {hub_id!r} from the hub: {e}") from None


# Bumped whenever the cache's contents change meaning, so an older cache is rebuilt, not reused.
# 2: SentencePiece GGUF tokenizers rebuilt exactly (scalelens.models.gguf_tokenizer); version 1
#    used transformers' GGUF tokenizer, which splits Gemma 3 words into fragments.
DEQUANT_FORMAT = 2

# Tricky strings beside the built-in prompt sets for the rebuilt-tokenizer check
TOKENIZER_CHECK_EXTRA = (
    "The capital of France is", " leading space", "trailing space ", "digits 0123456789 3.14",
    "accents: é ü ñ ß, CJK: 日本語, emoji: 😀, symbols: ∑ → ≠", "x" * 40, "a  b   c", "tab\tend",
)


def dequant_dir(sha256: str) -> Path:
    return cache_root() / "dequant" / f"v{DEQUANT_FORMAT}-{sha256}"


MANIFEST = "MANIFEST.json"  # every file of a de-quantised cache with its size and sha256
# The stat of every file when its sha256 last matched the manifest. Any write to a file (or a
# utime, or a replacement) changes its ctime, so a stamp that still matches means the bytes
# hashed then are the bytes there now; later loads skip the multi-second re-hash (24 s for the
# 1.5B model's 7 GB). SCALELENS_VERIFY=full re-hashes every load.
VERIFIED = "VERIFIED.json"
CACHE_META = (MANIFEST, VERIFIED)


def _load_packaged(spec: ModelSpec, dtype: torch.dtype, attn: str):
    """From the de-quantised cache, verified file by file against its manifest (any flipped
    byte is caught); a missing, incomplete or damaged cache is (re)built from the GGUF."""
    target = dequant_dir(spec.gguf.sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        problem = verify_cache(target)
        if problem is not None:
            if target.exists():
                log.warning("%s: %s; rebuilding it from the GGUF", target, problem)
            _build_dequant_cache(spec, target)
            problem = verify_cache(target)
            if problem is not None:
                raise PackagedModelError(f"{target}: the cache rebuilt from the GGUF does not "
                                         f"verify ({problem}); delete the folder and check the "
                                         f"disk")
    return _from_pretrained(str(target), spec.key, dtype, attn)


def _file_sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(folder: Path) -> dict[str, dict]:
    """Record the size and sha256 of every file in `folder` (the manifest itself excluded)."""
    import json

    files = {p.name: {"size": p.stat().st_size, "sha256": _file_sha256(p)}
             for p in sorted(folder.iterdir()) if p.is_file() and p.name not in CACHE_META}
    (folder / MANIFEST).write_text(json.dumps(files, indent=1, sort_keys=True) + "\n")
    (folder / VERIFIED).unlink(missing_ok=True)
    return files


def _stat_stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _stamp_matches(folder: Path, names) -> bool:
    import json

    try:
        stamp = json.loads((folder / VERIFIED).read_text(encoding="utf-8"))
        return set(stamp) == set(names) and all(stamp[n] == _stat_stamp(folder / n)
                                                for n in names)
    except (OSError, ValueError, TypeError):
        return False


def verify_cache(folder: Path, full: bool | None = None) -> str | None:
    """None when every file the manifest lists is there with its size and sha256 (and no file
    is missing from it); else what is wrong, in words.

    The sha256s are computed when no stamp (VERIFIED.json) records the files' stat as of their
    last successful check, or when `full` (default: SCALELENS_VERIFY=full) asks for it."""
    import json
    import time

    if full is None:
        full = os.environ.get("SCALELENS_VERIFY", "") == "full"
    if not (folder / "COMPLETE").is_file():
        return "no cache yet" if not folder.exists() else "the cache is incomplete"
    try:
        files = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"its {MANIFEST} is missing or unreadable"
    t0 = time.perf_counter()
    present = {p.name for p in folder.iterdir() if p.is_file() and p.name not in CACHE_META}
    if present != set(files):
        return f"files differ from the manifest ({sorted(present ^ set(files))})"
    for name, want in files.items():
        size = (folder / name).stat().st_size
        if size != want["size"]:
            return f"{name} has {size} bytes, the manifest says {want['size']}"
    if not full and _stamp_matches(folder, files):
        log.info("%s: unchanged since its files were verified by sha256 (stat stamp; "
                 "SCALELENS_VERIFY=full re-hashes)", folder.name)
        return None
    for name, want in files.items():
        if _file_sha256(folder / name) != want["sha256"]:
            (folder / VERIFIED).unlink(missing_ok=True)
            return f"{name} does not match its sha256 in the manifest (damaged)"
    stamp = {name: _stat_stamp(folder / name) for name in sorted(files)}
    (folder / VERIFIED).write_text(json.dumps(stamp, indent=1) + "\n", encoding="utf-8")
    log.info("%s: %d files verified by sha256 in %.2f s", folder.name, len(files),
             time.perf_counter() - t0)
    return None


def _tokenizer_check_texts() -> list[str]:
    from scalelens.prompts import BUILTIN, load_prompt_set

    texts = [t for name in sorted(BUILTIN) for t in load_prompt_set(name).texts]
    return texts + list(TOKENIZER_CHECK_EXTRA)


def gguf_tokenizer(path: Path):
    """The tokenizer of a GGUF file: rebuilt exactly for SentencePiece vocabularies (checked
    against the sentencepiece library), transformers' GGUF conversion for BPE ones."""
    from scalelens.models import gguf_tokenizer as G

    if G.tokenizer_model(path) == "llama":
        try:
            vocab = G.read_sentencepiece_vocab(path)
        except G.GGUFTokenizerError:
            vocab = None  # a SentencePiece vocabulary that ships merges: transformers reads it
        if vocab is not None:
            tok = G.build_tokenizer(vocab)
            n = G.check_against_sentencepiece(tok, vocab, _tokenizer_check_texts())
            log.info("%s: SentencePiece tokenizer rebuilt from the GGUF, identical to "
                     "sentencepiece on %d texts", path.name, n)
            return tok
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def _plain_copy(model: torch.nn.Module) -> torch.nn.Module:
    """The de-quantised weights in an ordinary model (transformers 5 refuses to save a model
    loaded from GGUF: its config still names the GGUF quantisation)."""
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict(), assign=True)
    plain.tie_weights()
    return plain


def _build_dequant_cache(spec: ModelSpec, target: Path) -> None:
    path = gguf_path(spec)
    log.info("de-quantising %s (once; cached in %s)", path.name, target)
    try:
        tok = gguf_tokenizer(path)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                     dtype=torch.float32)
    except ScalelensError:
        raise
    except Exception as e:  # the gguf reader raises assorted errors on a damaged file
        raise PackagedModelError(f"cannot read GGUF {path}: {type(e).__name__}: {e}") from None
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _plain_copy(model).save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    (tmp / "COMPLETE").write_text(f"{spec.key} {spec.gguf.sha256}\n")
    write_manifest(tmp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
