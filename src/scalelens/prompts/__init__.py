"""Prompt sets as data files, each locked by an MD5 pinned in params.yaml.

The lock recipe is the seeds': md5 of the prompt texts joined with '|||' (utf-8). A set is either a
built-in name (a file in prompts/data/) or a path to a json file of the same shape:
{"name": str, "description": str, "prompts": [{"category": str, "text": str}, ...]}.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from scalelens.errors import ScalelensError

DATA_DIR = Path(__file__).parent / "data"
BUILTIN = {
    "standard10_v3": DATA_DIR / "standard10_v3.json",
    "residual_gain_25": DATA_DIR / "residual_gain_25.json",
    "cognitive_tasks": DATA_DIR / "cognitive_tasks.json",
    "attribution_tasks": DATA_DIR / "attribution_tasks.json",
}


class PromptSetError(ScalelensError):
    pass


@dataclass(frozen=True)
class PromptSet:
    name: str
    texts: tuple[str, ...]
    categories: tuple[str, ...]
    path: Path

    @property
    def md5(self) -> str:
        return prompt_md5(self.texts)

    def __len__(self) -> int:
        return len(self.texts)


def prompt_md5(texts) -> str:
    """The seeds' lock: md5 of the prompts joined with '|||'."""
    return hashlib.md5("|||".join(texts).encode("utf-8")).hexdigest()


def prompt_set_path(name_or_path: str) -> Path:
    if name_or_path in BUILTIN:
        return BUILTIN[name_or_path]
    path = Path(name_or_path)
    if not path.is_file():
        raise PromptSetError(
            f"prompt set {name_or_path!r} is neither a built-in set ({', '.join(BUILTIN)}) "
            f"nor an existing json file"
        )
    return path


def load_prompt_set(name_or_path: str, expected_md5: str | None = None) -> PromptSet:
    """Read a prompt set; when expected_md5 is given, stop on a mismatch showing both hashes."""
    path = prompt_set_path(name_or_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        items = data["prompts"]
        texts = tuple(str(p["text"]) for p in items)
        cats = tuple(p.get("category") for p in items)
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise PromptSetError(f"{path}: not a prompt set file ({type(e).__name__}: {e})") from None
    for i, (cat, text) in enumerate(zip(cats, texts)):
        if not isinstance(cat, str) or not cat.strip():
            raise PromptSetError(f"{path}: prompt {i} ({text[:40]!r}) has no category; every "
                                 f"prompt needs a non-empty \"category\" (the studies group by "
                                 f"it)")
    if not texts:
        raise PromptSetError(f"{path}: the prompt set is empty")
    ps = PromptSet(str(data.get("name", path.stem)), texts, cats, path)
    if expected_md5 is not None and ps.md5 != expected_md5:
        raise PromptSetError(
            f"prompt set {name_or_path!r} ({path}) has MD5 {ps.md5}, but params.yaml pins "
            f"{expected_md5}: the prompts changed; restore the file or update the pinned MD5"
        )
    return ps
