"""SentencePiece tokenizers rebuilt from GGUF vocabularies equal the sentencepiece library."""

import random

import pytest

from scalelens.models import gguf_tokenizer as G
from scalelens.models.loading import TOKENIZER_CHECK_EXTRA, gguf_tokenizer
from scalelens.models.packaged import gguf_path
from scalelens.models.registry import get_spec

U = G.SPIECE_UNDERLINE


def _vocab(normal: dict[str, float], add_space_prefix=False, user=()) -> G.SentencePieceVocab:
    pieces = ["<pad>", "<eos>", "<bos>", "<unk>"]
    types = [G.CONTROL, G.CONTROL, G.CONTROL, G.CONTROL]
    scores = [0.0, 0.0, 0.0, 0.0]
    for b in range(256):
        pieces.append(f"<0x{b:02X}>")
        types.append(G.BYTE)
        scores.append(0.0)
    for p, s in normal.items():
        pieces.append(p)
        types.append(G.NORMAL)
        scores.append(s)
    for p in user:
        pieces.append(p)
        types.append(G.USER_DEFINED)
        scores.append(0.0)
    return G.SentencePieceVocab(tuple(pieces), tuple(scores), tuple(types), bos_id=2, eos_id=1,
                                unk_id=3, pad_id=0, add_bos=True, add_eos=False,
                                add_space_prefix=add_space_prefix, chat_template=None)


PIECES = {U: -0.5, "a": -0.1, "b": -0.2, "c": -0.3, "ab": -1.0, "bc": -2.0, "abc": -3.0,
          U + "a": -1.5, U + "ab": -2.5, "ca": -4.0, U + U: -5.0}


def test_merges_follow_the_merged_piece_score():
    merges = G.bpe_merges(_vocab(PIECES))
    assert merges[:3] == [("a", "b"), (U, "a"), ("b", "c")]  # scores -1, -1.5, -2
    assert ("ab", "c") in merges and ("a", "bc") in merges
    assert merges.index(("a", "bc")) < merges.index(("ab", "c"))  # equal score: by left id


@pytest.mark.parametrize("text, pieces", [
    ("abc", ["abc"]),  # a+b first (score -1), then ab+c
    ("bca", ["bc", "a"]),  # b+c (-2) before c+a (-4); "bca" is no piece
    (" ab", [U + "ab"]),
    ("cab", ["c", "ab"]),  # a+b (-1) beats c+a (-4)
    ("a  b", ["a", U + U, "b"]),
    ("ad", ["a", "<0x64>"]),  # 'd' is not a piece: byte fallback
])
def test_hand_computed_segmentations(text, pieces):
    vocab = _vocab(PIECES)
    tok = G.build_tokenizer(vocab)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == pieces
    assert G.sentencepiece_processor(vocab).encode(text, out_type=str) == pieces
    assert tok(text)["input_ids"][0] == 2  # <bos> added
    assert tok.decode(ids) == text


@pytest.mark.parametrize("prefix", [False, True])
def test_random_strings_equal_sentencepiece(prefix):
    vocab = _vocab(PIECES, add_space_prefix=prefix)
    tok = G.build_tokenizer(vocab)
    rng = random.Random(0)
    texts = ["".join(rng.choice("abc  dé") for _ in range(rng.randint(1, 30)))
             for _ in range(300)]
    assert G.check_against_sentencepiece(tok, vocab, texts) == 300


def test_user_defined_pieces_stay_whole_and_a_difference_is_reported():
    vocab = _vocab(PIECES, user=("<tool>",))
    tok = G.build_tokenizer(vocab)
    assert tok.convert_ids_to_tokens(tok("ab<tool>c", add_special_tokens=False)["input_ids"]) == [
        "ab", "<tool>", "c"]
    assert G.check_against_sentencepiece(tok, vocab, ["ab<tool>c", "abc"]) == 1  # skipped one
    other = G.build_tokenizer(_vocab({**PIECES, "ca": -0.01}))  # c+a now beats b+c
    assert G.check_against_sentencepiece(other, vocab, ["abc"]) == 1
    with pytest.raises(G.GGUFTokenizerError, match="differs from SentencePiece on 'bca'"):
        G.check_against_sentencepiece(other, vocab, ["abc", "bca"])


def test_packaged_gemma3_tokenizer_is_the_sentencepiece_one():
    """transformers' GGUF tokenizer gives 'The ▁c ap it al ▁of ▁Fr an ce ▁is' here."""
    path = gguf_path(get_spec("gemma3-270m"))
    tok = gguf_tokenizer(path)
    ids = tok("The capital of France is")["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["<bos>", "The", U + "capital", U + "of",
                                              U + "France", U + "is"]
    vocab = G.read_sentencepiece_vocab(path)
    # all but the two holding user-defined pieces (a double space, a tab) are compared
    assert G.check_against_sentencepiece(tok, vocab, TOKENIZER_CHECK_EXTRA) == len(
        TOKENIZER_CHECK_EXTRA) - 2
    assert tok.convert_ids_to_tokens(
        tok("<start_of_turn>user\n", add_special_tokens=False)["input_ids"]) == [
        "<start_of_turn>", "user", "\n"]
