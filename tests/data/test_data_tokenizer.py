import pytest

from workbench.data.tokenizer import MODE_TOKENS, Tokenizer, train_tokenizer

TEXT = [
    f"The quick brown fox {i} jumps over the lazy dog number {i * 7}. Sentences repeat with variations."
    for i in range(300)
] + ["Naïve café façade — déjà vu; 東京 🙂"]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tok.model"
    info = train_tokenizer(TEXT, path, vocab_size=450, num_sentinels=10, hard_vocab_limit=False)
    assert info["seconds"] < 30
    return Tokenizer.load(path, num_sentinels=10)


def test_special_ids(tok):
    assert (tok.pad_id, tok.eos_id, tok.bos_id, tok.unk_id) == (0, 1, 2, 3)
    assert tok.id_to_piece(0) == "<pad>" and tok.id_to_piece(1) == "<eos>" and tok.id_to_piece(2) == "<bos>"
    assert tok.sentinel_ids == list(range(4, 14))
    assert tok.id_to_piece(tok.sentinel_ids[3]) == "<extra_id_3>"
    assert set(tok.mode_ids) == set(MODE_TOKENS) and len(set(tok.mode_ids.values())) == 3


def test_roundtrip_and_byte_fallback(tok):
    s = "The lazy fox — déjà vu 東京 🙂 zqxj"
    ids = tok.encode(s)
    assert tok.decode(ids) == s
    assert 3 not in ids  # byte fallback: no unk
    assert tok.encode("fox", add_bos=True, add_eos=True)[0] == 2 and tok.encode("fox", add_eos=True)[-1] == 1
    assert tok.encode_batch(["a fox", "dog"]) == [tok.encode("a fox"), tok.encode("dog")]
    assert tok.encode("<extra_id_2> [NLG]").count(tok.sentinel_ids[2]) == 1


def test_gemma_style_unused_tokens(tmp_path):
    path = tmp_path / "gemma_like.model"
    train_tokenizer(
        TEXT,
        path,
        vocab_size=400,
        num_sentinels=0,
        hard_vocab_limit=False,
        extra_symbols=[f"<unused{i}>" for i in range(8)],
    )
    # a tokenizer without <extra_id_*> / mode pieces maps them onto <unused*>
    tok = Tokenizer.load(path, num_sentinels=5)
    assert [tok.id_to_piece(i) for i in tok.sentinel_ids] == [f"<unused{i}>" for i in range(5)]
    assert [tok.id_to_piece(i) for i in tok.mode_ids.values()] == ["<unused5>", "<unused6>", "<unused7>"]
    tok2 = Tokenizer.load(path, num_sentinels=100)
    with pytest.raises(ValueError, match="unused"):
        tok2.sentinel_ids  # noqa: B018
