import numpy as np
import pytest

from workbench.data.pipeline import (
    UL2_MIXTURE,
    Denoiser,
    batches,
    pack_documents,
    pad_to,
    prefix_lm_split,
    random_spans_noise_mask,
    sample_denoiser,
    span_corrupt,
    ul2_example,
)

SENT = list(range(1000, 1100))


def test_pack_documents():
    out = pack_documents([[5, 6, 7], [8], [9, 10, 11, 12]], seq_len=4, eos_id=1)
    assert out.tolist() == [[5, 6, 7, 1], [8, 1, 9, 10]]
    full = pack_documents([[5, 6, 7], [8]], seq_len=4, eos_id=1, drop_remainder=False)
    assert full.tolist() == [[5, 6, 7, 1], [8, 1, 0, 0]] and full.dtype == np.int32


def test_batches_deterministic_and_complete():
    data = {"x": np.arange(10), "y": np.arange(10) * 2}
    a = [b["x"].tolist() for b in batches(data, 3, seed=1, epoch=0)]
    assert a == [b["x"].tolist() for b in batches(data, 3, seed=1, epoch=0)]
    assert a != [b["x"].tolist() for b in batches(data, 3, seed=1, epoch=1)]
    assert len(a) == 3 and len(set(sum(a, []))) == 9
    assert sum(len(b["x"]) for b in batches(data, 3, seed=1, drop_last=False)) == 10
    for b in batches(data, 4, seed=0):
        assert (b["y"] == 2 * b["x"]).all()
    with pytest.raises(ValueError):
        next(batches({"x": np.arange(3), "y": np.arange(4)}, 2))


def test_prefix_lm_split():
    t = np.arange(12).reshape(2, 6)
    d = prefix_lm_split(t)
    assert d["inputs"].tolist() == [[0, 1, 2], [6, 7, 8]] and d["targets"].tolist() == [
        [3, 4, 5],
        [9, 10, 11],
    ]


def reconstruct(inputs, targets, sentinels):
    spans, cur, sid = {}, None, set(sentinels)
    for t in targets:
        if t in sid:
            cur = t
            spans[cur] = []
        elif cur is not None:
            spans[cur].append(t)
    out = []
    for t in inputs:
        out.extend(spans[t] if t in sid else [t])
    return out


@pytest.mark.parametrize("mean_span,density", [(3.0, 0.15), (12.0, 0.5), (8.0, 0.3)])
def test_span_corruption_statistics(mean_span, density):
    rng = np.random.default_rng(0)
    L, noise, spans = 512, 0, 0
    for _ in range(200):
        mask = random_spans_noise_mask(L, density, mean_span, rng)
        noise += mask.sum()
        spans += (mask & ~np.concatenate([[False], mask[:-1]])).sum()
    assert abs(noise / (200 * L) - density) < 0.01
    assert abs(noise / spans - mean_span) / mean_span < 0.05


def test_span_corrupt_reconstructs_and_is_deterministic():
    tokens = np.arange(10, 110)
    for seed in range(20):
        inp, tgt = span_corrupt(tokens, np.random.default_rng(seed), 3.0, 0.15, SENT, eos_id=1)
        assert tgt[-1] == 1 and tgt[0] == SENT[0] and inp.dtype == np.int32
        assert reconstruct(inp.tolist(), tgt[:-1].tolist(), SENT) == tokens.tolist()
        n_spans = sum(1 for t in inp if t in SENT)
        assert [t for t in inp if t in SENT] == SENT[:n_spans]
        again = span_corrupt(tokens, np.random.default_rng(seed), 3.0, 0.15, SENT, eos_id=1)
        assert (again[0] == inp).all() and (again[1] == tgt).all()
    with pytest.raises(ValueError, match="sentinel"):
        span_corrupt(tokens, np.random.default_rng(0), 1.0, 0.5, SENT[:3])


def test_ul2_example():
    modes = {"[NLU]": 7, "[NLG]": 8, "[S2S]": 9}
    tokens = np.arange(10, 74)
    r = ul2_example(tokens, np.random.default_rng(0), Denoiser(3, 0.15, "[NLU]"), SENT, modes)
    assert r["inputs"][0] == 7 and reconstruct(r["inputs"][1:].tolist(), r["targets"].tolist(), SENT) == list(tokens)
    s = ul2_example(tokens, np.random.default_rng(0), Denoiser(0, 0.75, "[S2S]", prefix=True), SENT, modes, eos_id=1)
    assert s["inputs"].tolist() == [9, *range(10, 26)] and s["targets"].tolist() == [*range(26, 74), 1]
    rng = np.random.default_rng(0)
    picks = [sample_denoiser(rng) for _ in range(2000)]
    assert abs(sum(d.prefix for d in picks) / 2000 - 0.5) < 0.05 and len(UL2_MIXTURE) == 5


def test_pad_to():
    assert pad_to([[1, 2, 3], [4]], 2).tolist() == [[1, 2], [4, 0]]


def test_metrics_helpers():
    from workbench.data.baselines import mrr_at_k, rouge_l, token_f1

    assert mrr_at_k(np.array([[0.1, 0.9, 0.3]]), np.array([1])) == 1.0
    assert mrr_at_k(np.array([[0.5, 0.9, 0.3]]), np.array([0])) == 0.5
    ties = mrr_at_k(np.zeros((2000, 4)), np.zeros(2000, int))  # ties are not a free win
    assert abs(ties - np.mean([1, 1 / 2, 1 / 3, 1 / 4])) < 0.03
    assert rouge_l("a b c", "a c") == 0.8 and token_f1("x y", "y z") == 0.5
