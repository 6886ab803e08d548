"""Artifact writing: deterministic npz (no pickle), json and csv, written atomically.

`numpy.savez` stamps each zip member with the current time, so two identical runs give different
bytes; DVC would see a change. These writers fix every timestamp, so same arrays -> same bytes.
An artifact appears under its final name only once it is complete.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

_EPOCH = (1980, 1, 1, 0, 0, 0)


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary sibling path; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_npz(path: str | Path, **arrays) -> Path:
    """np.savez-compatible archive with fixed timestamps; object arrays are refused."""
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name in sorted(arrays):
                arr = np.asarray(arrays[name])
                if arr.dtype.hasobject:
                    raise TypeError(f"array {name!r} has dtype object; artifacts never pickle")
                buf = io.BytesIO()
                np.lib.format.write_array(buf, arr, allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, buf.getvalue())
    return Path(path)


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def jsonable(obj):
    """Plain JSON types from dataclasses (or .to_dict()), numpy values, tuples; NaN/inf -> None."""
    if hasattr(obj, "to_dict") and not isinstance(obj, type):
        return jsonable(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None  # json has no NaN; null says "undefined"
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_json(path: str | Path, obj) -> Path:
    """Pretty, key-sorted json; NaN and inf become null."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(jsonable(obj), indent=2, sort_keys=True, ensure_ascii=False)
                       + "\n", encoding="utf-8")
    return Path(path)


def save_csv(path: str | Path, frame) -> Path:
    """A pandas DataFrame as csv with a fixed float format, so reruns give the same bytes."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.10g", lineterminator="\n")
    return Path(path)
