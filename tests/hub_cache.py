"""Tiny models laid out as a Hugging Face hub cache, the way `hf download` leaves one.

<HF_HOME>/hub/models--<org>--<name>/
    blobs/<sha256 of the file>          the files themselves
    refs/main                           the snapshot's commit hash
    snapshots/<commit>/<file>           relative symlinks into blobs/

Nothing here downloads: the models are the tiny random ones of scalelens.models.tiny.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

COMMIT = "c0ffee" + "0" * 34


def save_as_hub_download(hf_home: Path, repo_id: str, lm) -> Path:
    """Write `lm` (a LoadedModel) into the hub cache under `repo_id`; returns the snapshot."""
    repo = Path(hf_home) / "hub" / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / COMMIT
    blobs = repo / "blobs"
    for d in (snap, blobs, repo / "refs"):
        d.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        lm.model.save_pretrained(tmp)
        lm.tokenizer.save_pretrained(tmp)
        for f in sorted(Path(tmp).iterdir()):
            digest = hashlib.sha256(f.read_bytes()).hexdigest()
            shutil.copyfile(f, blobs / digest)
            link = snap / f.name
            if link.exists() or link.is_symlink():
                link.unlink()
            os.symlink(os.path.relpath(blobs / digest, snap), link)
    (repo / "refs" / "main").write_text(COMMIT)
    return snap
