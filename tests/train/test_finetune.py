"""`workbench.finetune` / `workbench finetune`: every task kind from both stored model kinds, resume, errors.

Tiny random models (1 layer, the prepared tokenizer's vocabulary) in a temporary model store; tiny data files
written here. The numbers mean nothing; the tests check what runs, what is measured, saved and refused.
"""

import json
import math

import jax
import numpy as np
import pytest

from workbench import adapt, cli, config, zoo
from workbench.config import EncDecConfig, EncoderOnlyConfig, GemmaConfig
from workbench.data import DataError
from workbench.finetune import RECIPES, finetune, load_finetuned
from workbench.models import model_for

WORDS = "good bad happy sad great awful fine poor nice terrible".split()
FAST = {"batch": 4, "lr": 1e-3, "max_len": 16, "max_target_len": 6, "progress": False}


@pytest.fixture(scope="module")
def tok():
    from workbench.data import load_tokenizer

    try:
        return load_tokenizer()
    except FileNotFoundError as e:
        pytest.skip(f"prepared data absent ({e})")


@pytest.fixture(scope="module")
def store(tmp_path_factory, tok):
    """A model store holding tiny random 'tiny/decoder' and 'tiny/encdec' models."""
    root = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_MODELS", str(root))
        small = {"vocab_size": tok.vocab_size, "num_layers": 1, "attention_pattern": ("global",)}  # fast to compile
        dec = config.decoder_preset("tiny", **small)
        ed = config.encdec_preset("tiny-tiny", **small)
        zoo.save("tiny/decoder", dec, _random_params(dec, 0))
        zoo.save("tiny/encdec", ed, _random_params(ed, 1))
        yield root


def _random_params(cfg, seed: int) -> dict:
    """N(0, 0.05) weights of the model's shapes, drawn by numpy (compiling the initialiser takes seconds)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: (0.05 * rng.standard_normal(s.shape)).astype(s.dtype),
                        model_for(cfg).abstract_params())


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    out = {
        "pairs": _jsonl(d / "pairs.jsonl", [{"question": f"say {WORDS[i % 10]}", "answer": WORDS[i % 10]}
                                            for i in range(24)]),
        "rank": _jsonl(d / "rank.jsonl", [{"query": WORDS[i % 10], "label": i % 4,
                                           "candidates": [WORDS[(i + j) % 10] for j in range(4)]} for i in range(20)]),
        "pairs_int": _jsonl(d / "nli.jsonl", [{"a": f"it was {WORDS[i % 10]}", "b": WORDS[(i + 1) % 10],
                                               "label": i % 3} for i in range(20)]),
    }
    (d / "sentiment.csv").write_text("sentence,polarity\n" + "".join(
        f"it was {WORDS[i % 10]},{'pos' if i % 2 else 'neg'}\n" for i in range(20)))
    out["csv"] = str(d / "sentiment.csv")
    (d / "reg").mkdir()
    for split, n in (("train", 16), ("validation", 6)):
        _jsonl(d / "reg" / f"{split}.jsonl", [{"text": f"rated {WORDS[i % 10]}", "note": WORDS[i % 3], "score": i / 4}
                                              for i in range(n)])
    out["reg_dir"] = str(d / "reg")
    return out


def test_the_table_covers_every_task_kind_from_both_kinds():
    assert set(RECIPES) == {(m, t) for m in ("decoder", "encdec")
                            for t in ("seq2seq", "classification", "regression", "ranking")}


@pytest.mark.parametrize("model, kind", [("tiny/decoder", GemmaConfig), ("tiny/encdec", EncDecConfig)])
def test_seq2seq_trains_generates_and_saves_to_the_store(store, files, tmp_path, monkeypatch, model, kind):
    monkeypatch.setenv("WORKBENCH_MODELS", str(store))
    res = finetune("seq2seq", model, files["pairs"], input_col="question", target_col="answer",
                   out_dir=tmp_path / "run", **FAST)
    assert res.n_train == 22 and res.n_eval == 2 and "2 of the 24 training rows" in res.heldout  # seeded split
    assert res.steps == math.ceil(22 / 4) and res.epochs >= 1.0  # default: one full epoch
    assert set(res.metrics) == {"exact_match", "rougeL", "token_f1"}
    assert all(np.isfinite(v) for v in res.metrics.values())
    assert res.trained_kind == res.source_kind and res.saved_as == "finetuned/run"
    cfg, _ = zoo.load("finetuned/run")
    assert isinstance(cfg, kind)
    assert len(res.samples) == 2 and {"input", "reference", "generated"} <= set(res.samples[0])
    line = res.summary
    assert "\n" not in line and "rougeL" in line and "finetuned/run" in line
    assert json.loads((tmp_path / "run" / "finetune.json").read_text())["summary"] == line


# (decoder-only -> encoder-only is tried on classification and regression, encoder-decoder -> encoder-only on
# ranking; RECIPES maps every pair through the same two builders)
@pytest.mark.parametrize("task_kind, model, data, kw, metrics", [
    ("classification", "tiny/decoder", "csv", {"text_col": "sentence", "label_col": "polarity"},
     {"accuracy", "f1", "macro_f1"}),
    ("regression", "tiny/decoder", "reg_dir", {"text_pair_col": "note", "label_col": "score"},
     {"pearson", "spearman", "mse"}),
    ("ranking", "tiny/encdec", "rank", {}, {"mrr@10", "recall@1"}),
])
def test_encoder_tasks_build_an_encoder_only_model(store, files, tmp_path, monkeypatch, task_kind, model, data, kw,
                                                    metrics):
    monkeypatch.setenv("WORKBENCH_MODELS", str(store))
    res = finetune(task_kind, model, files[data], steps=4, out_dir=tmp_path / "run", **kw, **FAST)
    assert set(res.metrics) == metrics | {"score", "score_lo", "score_hi"}
    assert all(np.isfinite(v) for v in res.metrics.values())
    m = res.metrics  # the primary metric with its bootstrap interval over the held-out rows
    assert m["score"] == m[{"classification": "accuracy", "regression": "pearson", "ranking": "mrr@10"}[task_kind]]
    assert m["score_lo"] <= m["score_hi"]
    assert res.trained_kind == "encoder_only" and res.saved_as is None and "load_finetuned" in res.summary
    cfg, params = load_finetuned(tmp_path / "run")
    assert isinstance(cfg, EncoderOnlyConfig) and cfg.task == task_kind and "head" in params
    assert cfg.pooling == "mean" and cfg.dropout_rate == 0.1  # documented defaults
    if data == "csv":  # string labels: sorted names -> ids
        assert res.label_names == ["neg", "pos"] and cfg.num_labels == 2
    if data == "reg_dir":  # the directory's validation split is the held-out split
        assert res.heldout == "validation split (6 rows)" and res.n_train == 16


def test_one_call_equals_the_hand_assembled_pieces(store, tok, tmp_path, monkeypatch):
    """On a prepared task: the same rows, model, head and trainer as `recipes.finetune_encoder` -> the same numbers
    (settings of the csv case above, so the compiled training step is shared)."""
    from workbench import recipes
    from workbench.data import load_task, tokenize_classification
    from workbench.train import TrainConfig

    monkeypatch.setenv("WORKBENCH_MODELS", str(store))
    res = finetune("classification", "tiny/decoder", "sentiment_binary", max_train=32, max_eval=16, data_seed=0,
                   steps=4, warmup=1, out_dir=tmp_path / "call", **FAST)
    assert res.heldout == "validation split (1909 rows), 16 of them used (shuffle seed 0)"

    task = load_task("sentiment_binary")
    tr, ev = (tokenize_classification(task[s].shuffle(seed=0).select(range(n)), tok, 16)
              for s, n in (("train", 32), ("validation", 16)))
    dec_cfg, dec_params = zoo.load("tiny/decoder")
    cfg = EncoderOnlyConfig(dec_cfg, pooling="mean", task="classification", num_labels=2, dropout_rate=0.1)
    params = adapt.decoder_to_encoder_only(dec_params, cfg, jax.random.key(0))
    metrics, _ = recipes.finetune_encoder(params, cfg, tr, ev, TrainConfig(steps=4, learning_rate=1e-3, warmup_steps=1),
                                          4, str(tmp_path / "hand"))
    assert res.metrics == metrics


def test_cli_runs_one_finetune_and_prints_the_summary(store, files, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_MODELS", str(store))
    argv = ["finetune", "--task-kind", "ranking", "--model", "tiny/encdec", "--data", files["rank"], "--steps", "4",
            "--batch", "4", "--lr", "1e-3", "--max-len", "16", "--out", str(tmp_path / "cli"), "--no-progress"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("ranking finetune of tiny/encdec (encdec->encoder_only)")
    assert "mrr@10" in out[0]


def test_an_interrupted_run_continues_where_it_stopped(store, files, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_MODELS", str(store))
    args = ("classification", "tiny/decoder", files["csv"])
    kw = dict(text_col="sentence", label_col="polarity", steps=4, checkpoint_every=1, out_dir=tmp_path / "run",
              **FAST)  # the settings of the csv case above: its compiled programs are reused

    def stop_at_update_2(step, record, state):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(*args, callbacks=[stop_at_update_2], **kw)
    res = finetune(*args, **kw)
    assert res.resumed_from == 2 and res.steps == 4 and "resumed from step 2" in res.summary
    logged = [json.loads(x)["step"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert logged == [0, 1, 2, 3]  # updates 0, 1 from the first run, 2, 3 from the second: not restarted
    again = finetune(*args, **kw)  # a finished run is evaluated again, not retrained
    assert again.resumed_from == 4 and "trained before" in again.summary and again.metrics == res.metrics
    with pytest.raises(ValueError, match="other settings"):  # another budget in the same run directory
        finetune(*args, **{**kw, "steps": 6})


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_errors_are_one_clear_line(store, files, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_MODELS", str(store))
    with pytest.raises(ValueError, match=r"unknown task kind 'tagging'; known: seq2seq, classification, regression"):
        finetune("tagging", "tiny/decoder", files["pairs"])
    with pytest.raises(DataError, match=r"pairs.jsonl: seq2seq needs the input column 'inputs' and target column "
                                        r"'targets', but split 'train' has columns question, answer"):
        finetune("seq2seq", "tiny/decoder", files["pairs"])
    with pytest.raises(DataError, match=r"out of range \(class ids 0\.\.1\): row 3: 2"):
        finetune("classification", "tiny/decoder", files["pairs_int"], text_col="a", num_labels=2, **FAST)
    bad_rank = _jsonl(tmp_path / "bad_rank.jsonl", [{"query": "q", "candidates": ["a", "b"], "label": i % 3}
                                                    for i in range(6)])
    with pytest.raises(DataError, match=r"out of range \(candidate indices 0\.\.1\)"):
        finetune("ranking", "tiny/decoder", bad_rank, **FAST)
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train.csv").write_text("text,label\na,0\nb,1\n")
    (tmp_path / "splits" / "validation.csv").write_text("text,label\n\n")
    with pytest.raises(DataError, match=r"validation.csv: a header but no rows \(split 'validation' is empty\)"):
        finetune("classification", "tiny/decoder", str(tmp_path / "splits"), **FAST)
    with pytest.raises(ValueError, match="steps or epochs, not both"):
        finetune("regression", "tiny/decoder", files["reg_dir"], steps=2, epochs=1.0)
    with pytest.raises(FileNotFoundError, match="no model 'tiny/missing'"):
        finetune("regression", "tiny/missing", files["reg_dir"], label_col="score", **FAST)

    base = ["finetune", "--model", "tiny/decoder", "--out", str(tmp_path / "x"), "--no-progress"]
    assert cli.main([*base, "--task-kind", "tagging", "--data", files["pairs"]]) == 1
    assert "unknown task kind 'tagging'" in _one_line(capsys)
    assert cli.main([*base, "--task-kind", "classification", "--data", files["csv"]]) == 1
    line = _one_line(capsys)
    assert line.startswith("workbench finetune: error: ") and files["csv"] in line
    assert "has columns sentence, polarity" in line and "--text-col, --label-col" in line
