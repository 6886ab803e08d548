"""The GGUF header reader against gguf's own writer and reader, value type by value type."""

import numpy as np
import pytest

from scalelens.models.gguf_header import GGUFHeaderError, read_metadata


def _write(path, values: dict):
    from gguf import GGUFWriter

    w = GGUFWriter(str(path), arch="llama")
    for key, (kind, value) in values.items():
        getattr(w, f"add_{kind}")(key, value)
    w.add_tensor("t", np.arange(6, dtype=np.float32).reshape(2, 3))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


VALUES = {
    "a.u8": ("uint8", 200), "a.i8": ("int8", -100), "a.u16": ("uint16", 60000),
    "a.i16": ("int16", -30000), "a.u32": ("uint32", 4_000_000_000), "a.i32": ("int32", -7),
    "a.f32": ("float32", 0.25), "a.bool": ("bool", True), "a.str": ("string", "Grüße\n"),
    "a.u64": ("uint64", 2**63 + 5), "a.i64": ("int64", -(2**40)), "a.f64": ("float64", 1 / 3),
    "tokenizer.ggml.tokens": ("array", ["<unk>", "▁the", "", "a b"]),
    "tokenizer.ggml.scores": ("array", [0.0, -1.5, -2.25, 3.0]),
    "tokenizer.ggml.token_type": ("array", [2, 1, 1, 3]),
}


def test_every_value_type_reads_as_written_and_as_gguf_reads_it(tmp_path):
    from gguf import GGUFReader

    path = tmp_path / "m.gguf"
    _write(path, VALUES)
    meta = read_metadata(path)
    assert meta["general.architecture"] == "llama"
    for key, (_, value) in VALUES.items():
        assert meta[key] == value, key
    reader = GGUFReader(str(path))
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        ref = field.contents()
        assert meta[key] == pytest.approx(ref) if isinstance(ref, float) else meta[key] == ref, key
    assert set(meta) == {k for k in reader.fields if not k.startswith("GGUF.")}


def test_not_gguf_empty_and_truncated_files_are_one_clear_error(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"NOPE" + bytes(20))
    with pytest.raises(GGUFHeaderError, match="x.bin: not a GGUF file"):
        read_metadata(tmp_path / "x.bin")
    (tmp_path / "e.gguf").write_bytes(b"")
    with pytest.raises(GGUFHeaderError, match="e.gguf: empty file"):
        read_metadata(tmp_path / "e.gguf")
    _write(tmp_path / "m.gguf", VALUES)
    data = (tmp_path / "m.gguf").read_bytes()
    (tmp_path / "t.gguf").write_bytes(data[:120])
    with pytest.raises(GGUFHeaderError, match="t.gguf: the GGUF header ends early"):
        read_metadata(tmp_path / "t.gguf")
