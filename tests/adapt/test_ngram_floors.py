"""lm_eval.ngram_floors: count floors scored on exactly the positions the causal LM loss scores."""

import numpy as np
import pytest

from workbench.lm_eval import ngram_floors


def test_floors_by_hand():
    V = 5
    train = np.array([[2, 3, 4, 3, 4, 0]])  # targets 3 4 3 4 (pad not scored)
    evalr = np.array([[2, 3, 4, 0, 0, 0]])  # pairs (2,3), (3,4)
    f = ngram_floors(train, evalr, V, lambdas=(0.5,))
    uni = (np.bincount([3, 4, 3, 4], minlength=V) + 1.0) / (4 + V)
    assert f["unigram"] == pytest.approx(-np.mean(np.log([uni[3], uni[4]])))
    # p(3|2) = .5 * 1/1 + .5 * uni[3]; p(4|3) = .5 * 2/2 + .5 * uni[4]
    want = -np.mean(np.log([0.5 + 0.5 * uni[3], 0.5 + 0.5 * uni[4]]))
    assert f["bigram"] == pytest.approx(want) and f["bigram_lambda"] == 0.5
    assert f["train_tokens"] == 4 and f["eval_tokens"] == 2


def test_unseen_context_falls_back_to_unigram_and_best_lambda_wins():
    V = 50
    # a deterministic chain: token t is always followed by (t * 7 + 1) % V: the bigram model nails it
    seq = [3]
    for _ in range(4000):
        seq.append((seq[-1] * 7 + 1) % V or 1)
    rows = np.asarray(seq[:4000]).reshape(40, 100)
    f = ngram_floors(rows[:30], rows[30:], V)
    assert f["bigram"] < 0.2 < f["unigram"]
    assert f["bigram_lambda"] == 0.99  # the most bigram-heavy weight is best on a deterministic chain
    unseen = np.array([[49, 1]])  # context 49 never occurs in training: the unigram probability of 1 scores it
    h = ngram_floors(rows[:30], unseen, V)
    assert h["bigram"] == pytest.approx(h["unigram"])


def test_bad_input():
    with pytest.raises(ValueError, match="vocab_size"):
        ngram_floors(np.array([[1, 9]]), np.array([[1, 2]]), 5)
    with pytest.raises(ValueError, match="no scored"):
        ngram_floors(np.array([[1, 0]]), np.array([[1, 2]]), 5)
