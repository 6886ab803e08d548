"""A tokenizer rebuilt exactly from a GGUF file's SentencePiece vocabulary.

GGUF files of SentencePiece models (`tokenizer.ggml.model == "llama"`: Gemma, Llama 2, Mistral)
store pieces, scores and piece types but no BPE merges. transformers' GGUF loader turns them into
a fast tokenizer that splits words it should not: on the packaged Gemma 3 270M GGUF,
transformers 4.57 tokenises "The capital of France is" as `The ▁c ap it al ▁of ▁Fr an ce ▁is`
(the model's own tokenizer: `The ▁capital ▁of ▁France ▁is`), and 5.x as single characters. A
model fed such ids sees text it was never trained on.

This module builds the tokenizer the way SentencePiece's BPE model encodes: the normalised text
(spaces escaped to "▁", no dummy prefix unless the GGUF asks for one) is merged pairwise, always
merging the adjacent pair whose merged piece has the highest score, with byte fallback for
characters outside the vocabulary. As a `tokenizers` BPE that is: merges ranked by the merged
piece's score. Control pieces become special tokens and user-defined pieces (whitespace runs,
newlines) atomic added tokens, as llama.cpp partitions them. `check_against_sentencepiece`
encodes a corpus with the `sentencepiece` library from the same pieces and requires identical ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from scalelens.errors import ScalelensError
from scalelens.models.gguf_header import read_metadata

# GGUF token types (llama.cpp's llama_token_type), the same numbers as SentencePiece's piece types
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
SPIECE_UNDERLINE = "\u2581"  # "▁", SentencePiece's escaped space


class GGUFTokenizerError(ScalelensError):
    pass


@dataclass(frozen=True)
class SentencePieceVocab:
    """The tokenizer fields of a SentencePiece-type GGUF."""

    pieces: tuple[str, ...]
    scores: tuple[float, ...]
    types: tuple[int, ...]
    bos_id: int
    eos_id: int
    unk_id: int
    pad_id: int | None
    add_bos: bool
    add_eos: bool
    add_space_prefix: bool
    chat_template: str | None

    def __post_init__(self):
        if not len(self.pieces) == len(self.scores) == len(self.types):
            raise GGUFTokenizerError("GGUF tokenizer arrays have different lengths")


def tokenizer_model(gguf_file: str | Path) -> str:
    """`tokenizer.ggml.model` of a GGUF file: "llama" (SentencePiece), "gpt2" (BPE), ..."""
    return str(read_metadata(gguf_file).get("tokenizer.ggml.model", ""))


def read_sentencepiece_vocab(gguf_file: str | Path) -> SentencePieceVocab:
    meta = read_metadata(gguf_file)
    kind = meta.get("tokenizer.ggml.model")
    if kind != "llama":
        raise GGUFTokenizerError(f"{gguf_file}: tokenizer.ggml.model is {kind!r}, not a "
                                 f"SentencePiece ('llama') vocabulary")
    if "tokenizer.ggml.merges" in meta:
        raise GGUFTokenizerError(f"{gguf_file}: the vocabulary carries BPE merges; use "
                                 f"transformers' GGUF tokenizer for it")
    pad = meta.get("tokenizer.ggml.padding_token_id")
    return SentencePieceVocab(
        pieces=tuple(meta["tokenizer.ggml.tokens"]),
        scores=tuple(float(s) for s in meta["tokenizer.ggml.scores"]),
        types=tuple(int(t) for t in meta["tokenizer.ggml.token_type"]),
        bos_id=int(meta["tokenizer.ggml.bos_token_id"]),
        eos_id=int(meta["tokenizer.ggml.eos_token_id"]),
        unk_id=int(meta["tokenizer.ggml.unknown_token_id"]),
        pad_id=None if pad is None else int(pad),
        add_bos=bool(meta.get("tokenizer.ggml.add_bos_token", True)),
        add_eos=bool(meta.get("tokenizer.ggml.add_eos_token", False)),
        add_space_prefix=bool(meta.get("tokenizer.ggml.add_space_prefix", False)),
        chat_template=meta.get("tokenizer.chat_template"),
    )


def bpe_merges(vocab: SentencePieceVocab) -> list[tuple[str, str]]:
    """Merges reproducing SentencePiece BPE: every split (left, right) of a normal piece into two
    normal pieces, ranked by the merged piece's score (higher first), then by the ids of left
    and right."""
    index = {p: i for i, (p, t) in enumerate(zip(vocab.pieces, vocab.types)) if t == NORMAL}
    ranked = []
    for piece, i in index.items():
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in index and right in index:
                ranked.append((-vocab.scores[i], index[left], index[right], left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def build_tokenizer(vocab: SentencePieceVocab):
    """A transformers fast tokenizer equivalent to the SentencePiece model of `vocab`."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, processors
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    model_vocab = {p: i for i, p in enumerate(vocab.pieces)}
    bpe = BPE(vocab=model_vocab, merges=bpe_merges(vocab), unk_token=vocab.pieces[vocab.unk_id],
              byte_fallback=True, fuse_unk=True)
    tok = Tokenizer(bpe)
    steps = [normalizers.Replace(" ", SPIECE_UNDERLINE)]
    if vocab.add_space_prefix:
        steps.insert(0, normalizers.Prepend(" "))
    tok.normalizer = normalizers.Sequence(steps)
    tok.decoder = decoders.Sequence([decoders.Replace(SPIECE_UNDERLINE, " "),
                                     decoders.ByteFallback(), decoders.Fuse()]
                                    + ([decoders.Strip(" ", 1, 0)] if vocab.add_space_prefix
                                       else []))
    specials = [AddedToken(p, special=True, normalized=False)
                for p, t in zip(vocab.pieces, vocab.types) if t in (CONTROL, UNKNOWN)]
    user = [AddedToken(p, special=False, normalized=False)
            for p, t in zip(vocab.pieces, vocab.types) if t == USER_DEFINED]
    tok.add_special_tokens(specials)
    tok.add_tokens(user)
    bos, eos = vocab.pieces[vocab.bos_id], vocab.pieces[vocab.eos_id]
    single = ([f"{bos}:0"] if vocab.add_bos else []) + ["$A:0"] + (
        [f"{eos}:0"] if vocab.add_eos else [])
    pair = single + ([f"{bos}:1"] if vocab.add_bos else []) + ["$B:1"] + (
        [f"{eos}:1"] if vocab.add_eos else [])
    tok.post_processor = processors.TemplateProcessing(
        single=" ".join(single), pair=" ".join(pair),
        special_tokens=[(bos, vocab.bos_id), (eos, vocab.eos_id)])
    kwargs = {"bos_token": bos, "eos_token": eos, "unk_token": vocab.pieces[vocab.unk_id]}
    if vocab.pad_id is not None:
        kwargs["pad_token"] = vocab.pieces[vocab.pad_id]
    out = PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)
    if vocab.chat_template:
        out.chat_template = vocab.chat_template
    return out


def sentencepiece_processor(vocab: SentencePieceVocab):
    """The `sentencepiece` library's BPE model from the same pieces (the reference encoder)."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    for i, (piece, score, kind) in enumerate(zip(vocab.pieces, vocab.scores, vocab.types)):
        p = proto.pieces.add()
        p.piece, p.score = piece, score
        p.type = UNKNOWN if i == vocab.unk_id else kind
    spec = proto.trainer_spec
    spec.model_type = pb.TrainerSpec.BPE
    spec.vocab_size = len(vocab.pieces)
    spec.byte_fallback = True
    spec.unk_id, spec.bos_id, spec.eos_id = vocab.unk_id, vocab.bos_id, vocab.eos_id
    spec.pad_id = -1 if vocab.pad_id is None else vocab.pad_id
    norm = proto.normalizer_spec
    norm.name = "identity"
    norm.add_dummy_prefix = vocab.add_space_prefix
    norm.remove_extra_whitespaces = False
    norm.escape_whitespaces = True
    return spm.SentencePieceProcessor(model_proto=proto.SerializeToString())


def check_against_sentencepiece(tokenizer, vocab: SentencePieceVocab,
                                texts: Iterable[str]) -> int:
    """Encode `texts` with both; raise on the first difference. Texts holding a control or
    user-defined piece are skipped (SentencePiece does not partition on them; llama.cpp and
    transformers do). Returns how many texts were compared."""
    sp = sentencepiece_processor(vocab)
    atomic = [p for p, t in zip(vocab.pieces, vocab.types) if t in (CONTROL, USER_DEFINED)]
    n = 0
    for text in texts:
        if any(a and a in text for a in atomic):
            continue
        ours = tokenizer(text, add_special_tokens=False)["input_ids"]
        ref = sp.encode(text)
        if ours != ref:
            raise GGUFTokenizerError(
                f"rebuilt tokenizer differs from SentencePiece on {text[:60]!r}: "
                f"{tokenizer.convert_ids_to_tokens(ours)[:12]} vs "
                f"{[sp.id_to_piece(i) for i in ref][:12]}")
        n += 1
    return n
