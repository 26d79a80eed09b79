"""workbench.sizes_study: model specs, upstream loading and fingerprints, packed rows, checkpoint keys, the
latency loop, the claim arithmetic (sign conventions, per-seed ratios) and the metrics record, on micro models."""

import datasets
import jax
import numpy as np
import pandas as pd
import pytest

from workbench import adapt, decoder, zoo
from workbench import config as C
from workbench import notebook as nb
from workbench import sizes_study as ss
from workbench.config import EncDecConfig
from workbench.data import load_tokenizer
from workbench.tree import path_str


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


@pytest.fixture(scope="module")
def cfgs(tok):
    small = C.decoder_preset("micro", vocab_size=tok.vocab_size)
    return {"small": small, "large": small.replace(num_layers=3, embed_dim=96, hidden_dim=384)}


@pytest.fixture(scope="module")
def up(cfgs):
    return {r: (c, decoder.init(c, jax.random.key(i)), f"fp-{r}") for i, (r, c) in enumerate(cfgs.items())}


def preset(**changes):
    p = {**nb.read_preset("sizes", "smoke"), "scale": "smoke", "seed": 0}
    return nb.apply_overrides(p, changes)


def flat(tree):
    return {path_str(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(tree)}


def study(tok, up, seeds=(0, 1), **changes):
    return ss.SizesStudy(preset(**changes), list(seeds), tok, up)


# ------------------------------------------------------------------------------------------ the models
def test_unknown_models_are_named(tok, up):
    with pytest.raises(ValueError, match=r"unknown models \['X-L'\]; known: \['S-S'"):
        ss.check_models(["S-S", "X-L"])
    with pytest.raises(ValueError, match="unknown models"):
        study(tok, up, models=["S-S", "S-L"])
    with pytest.raises(ValueError, match="unknown models"):
        ss.is_decoder("dec-M")
    assert ss.is_decoder("dec-S") and not ss.is_decoder("L-S")


def test_vocabulary_must_be_shared(tok, up):
    bad = {**up, "large": (up["large"][0].replace(vocab_size=up["large"][0].vocab_size + 8), *up["large"][1:])}
    with pytest.raises(ValueError, match="share one vocabulary"):
        ss.SizesStudy(preset(), [0], tok, bad)


def test_specs_configs_teachers_and_seeds(tok, up, cfgs):
    st = study(tok, up, models=list(ss.SPECS), first_seed_only=["L-L", "dec-L"], **{"pt.cross_attn_warmup": 3})
    assert st.spec("L-S")["warmup"] == 3 and st.spec("L-S-nowarm")["warmup"] == 0 and st.spec("S-S")["warmup"] == 0
    assert "warmup" not in st.spec("dec-S")
    ls = st.model_config("L-S")
    assert isinstance(ls, EncDecConfig) and ls.encoder == cfgs["large"] and ls.decoder == cfgs["small"]
    assert st.model_config("dec-L") == cfgs["large"]
    assert [st.teacher_role(m) for m in ("S-S", "L-S", "L-L")] == ["small", "small", "large"]
    assert st.uses_kd("L-S") and not st.uses_kd("dec-S")
    assert st.model_seeds("L-L") == [0] and st.model_seeds("S-S") == [0, 1]
    table = st.models_table().set_index("model")
    assert table.loc["L-S", "cross-attention"] == "random" and table.loc["S-S", "cross-attention"] == "copied"
    assert table.loc["L-S", "warm-up K"] == 3 and table.loc["dec-S", "KD teacher"] == "-"
    assert table.loc["L-S", "params"] > table.loc["S-S", "params"] > table.loc["dec-S", "params"]
    assert study(tok, up, teacher="large").teacher_role("S-S") == "large"


# ------------------------------------------------------------------------------------------ upstream models
def test_upstream_missing_names_01_pretrain(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_MODELS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"'smoke/decoder-small' \(small, standing in for Gemma 2 2B\)"
                                                r".*01_pretrain.*--scale smoke.*upstream.small"):
        ss.upstream("decoder-small", "smoke", "Gemma 2 2B", "small")


def test_upstream_loads_by_name_or_folder_and_fingerprints_files(tmp_path, monkeypatch, cfgs, up):
    monkeypatch.setenv("WORKBENCH_MODELS", str(tmp_path / "zoo"))
    zoo.save("smoke/decoder-small", cfgs["small"], up["small"][1])
    cfg, params, fp = ss.upstream("decoder-small", "smoke", "Gemma 2 2B", "small")
    assert cfg == cfgs["small"] and len(fp) == 16
    np.testing.assert_array_equal(jax.tree.leaves(params)[0], jax.tree.leaves(up["small"][1])[0])
    folder = zoo.path("smoke/decoder-small")
    assert ss.upstream(str(folder), "other-scale", "Gemma 2 2B", "small")[2] == fp  # a folder is used as it is
    (folder / "notes.txt").write_text("retrained")
    assert ss.fingerprint(folder) != fp


# ------------------------------------------------------------------------------------------ data
def test_packed_rows_are_full_fixed_and_name_their_split(tok):
    texts = [" ".join(f"word{i}x{j}" for j in range(40)) for i in range(200)]
    split = datasets.Dataset.from_dict({"text": texts}, split="validation")
    rows = ss.packed_rows(split, tok, 12, 16)
    assert rows.shape == (12, 16) and (rows != 0).all()
    np.testing.assert_array_equal(rows, ss.packed_rows(split, tok, 12, 16))
    assert not np.array_equal(rows, ss.packed_rows(split, tok, 12, 16, seed=1))
    with pytest.raises(ValueError, match=r"^validation: only \d+ rows of 16 tokens, need 100000"):
        ss.packed_rows(split, tok, 100_000, 16)
    with pytest.raises(ValueError, match="^held-out: only"):
        ss.packed_rows(split, tok, 100_000, 16, name="held-out")


class _PadTok:
    """Encodes 'gap' as pad ids (0), anything else as 7 tokens 5; with EOS one document fills a row of 8."""

    eos_id = 1

    def encode_batch(self, texts):
        return [[0] * 7 if t == "gap" else [5] * 7 for t in texts]


def test_packed_rows_drop_rows_with_pad_ids():
    split = datasets.Dataset.from_dict({"text": ["gap", "text"] * 10}, split="train")
    rows = ss.packed_rows(split, _PadTok(), 10, 8)
    assert rows.shape == (10, 8) and (rows != 0).all()
    with pytest.raises(ValueError, match=r"^train: only 10 rows of 8 tokens, need 11$"):
        ss.packed_rows(split, _PadTok(), 11, 8)


def test_it_data_caps_held_out_rows_per_task(tok):
    it = {**nb.read_preset("sizes", "smoke")["it"], "train_examples": 10, "eval_per_task": 1}
    d = ss.it_data(tok, it)
    assert d.train["inputs"].shape == (10, it["max_input"]) and d.train["targets"].shape == (10, it["max_target"])
    assert len(d.refs) == len(d.tasks) == len(d.test["inputs"]) == sum(d.per_task.values())
    assert set(d.per_task.values()) == {1} and sorted(set(d.tasks)) == sorted(d.per_task)
    assert d.dropped["train"] >= 0 and d.dropped["test"] >= 0


def test_it_data_ranks_closed_set_tasks_among_their_training_answers(tok, up):
    it = {**nb.read_preset("sizes", "smoke")["it"], "train_examples": 60, "eval_per_task": 2,
          "rank_closed_set": True}
    d = ss.it_data(tok, it)
    assert set(d.candidates) <= ss.CLOSED_SET and "definition" not in d.candidates and d.candidates
    for task, answers in d.candidates.items():
        for answer, row in answers.items():  # the tokenized target row of a training row with that answer
            i = next(i for i, r in enumerate(d.train["targets"]) if np.array_equal(r, row))
            assert tok.decode([int(t) for t in row if t not in (0, tok.eos_id)]) == answer, (task, i)
    assert not ss.it_data(tok, {**it, "rank_closed_set": False}).candidates
    cfg, params, _ = up["small"]
    st = study(tok, up)
    picked = ss.ranked_answers(st.eval_fn("dec-S"), params, d, 4)
    ranked_rows = [i for i, t in enumerate(d.tasks) if t in d.candidates]
    assert sorted(picked) == ranked_rows
    assert all(picked[i] in d.candidates[d.tasks[i]] for i in ranked_rows)


# ------------------------------------------------------------------------------------------ checkpoints
def test_pt_key_keeps_its_layout_and_follows_fingerprints(tok, up):
    st = study(tok, up, models=list(ss.SPECS))
    P = st.P
    assert st.pt_key("L-S", 1) == {  # the checkpoint key of the notebook before the refactor, field by field
        "model": "L-S",
        "spec": {"kind": "encdec", "enc": "large", "dec": "small", "warmup": P["pt"]["cross_attn_warmup"]},
        "seed": 1, "pt": P["pt"], "teacher": "small", "decoder_only_attention": P["decoder_only_attention"],
        "upstream": {"small": "fp-small", "large": "fp-large"}}
    assert st.pt_key("dec-S", 0)["teacher"] is None and st.pt_key("dec-S", 0)["upstream"] == {"small": "fp-small"}
    assert st.pt_key("S-S", 0)["spec"] == {"kind": "encdec", "enc": "small", "dec": "small", "warmup": 0}
    moved = ss.SizesStudy(P, [0, 1], tok, {**up, "large": (*up["large"][:2], "fp-large-2")})
    key = nb.cache_key
    assert key(moved.pt_key("L-S", 1)) != key(st.pt_key("L-S", 1))
    assert key(moved.pt_key("L-L", 0)) != key(st.pt_key("L-L", 0))
    assert key(moved.pt_key("S-S", 0)) == key(st.pt_key("S-S", 0))  # S-S reads no large model
    assert key(st.pt_key("L-S", 0)) != key(st.pt_key("L-S", 1))
    assert moved.ckpt_dir("pt-L-S-s1", moved.pt_key("L-S", 1)) != st.ckpt_dir("pt-L-S-s1", st.pt_key("L-S", 1))


def test_adapt_warms_up_only_the_cross_attention_and_shares_teacher_batches(tok, up, tmp_path):
    st = ss.SizesStudy(preset(**{"pt.steps": 2, "pt.cross_attn_warmup": 2, "pt.batch": 2, "pt.seq_len": 16}), [0],
                       tok, up, tmp_path)
    st.pt_train = np.random.default_rng(0).integers(3, tok.vocab_size, (4, 16)).astype(np.int32)
    get = st.pt_batches(0, "small")
    assert get is st.pt_batches(0, "small") and get(0) is get(0)  # one teacher pass per step, shared
    assert "teacher_logits" in get(0) and "teacher_logits" not in st.pt_batches(0, None)(0)
    res = st.adapt("L-S", 0)
    assert res.step == 2
    before, after = flat(st.init_params("L-S", 0)), flat(res.params)
    changed = {p for p in before if not np.array_equal(before[p], after[p])}
    assert changed and all(adapt.cross_attention_only(p) for p in changed)
    assert any(not adapt.cross_attention_only(p) for p in before)


# ------------------------------------------------------------------------------------------ latency
def test_latency_interleaves_a_seeds_models_and_shares_one_measurement_per_architecture(tok, up, monkeypatch):
    st = study(tok, up, models=["S-S", "L-S", "L-S-nowarm", "dec-S"], first_seed_only=["dec-S"],
               **{"latency.new_tokens": 4, "latency.runs": 2})
    st.val = {"inputs": np.ones((2, 32), np.int32)}
    st.pt_params = {(m, s): f"{m}/{s}" for m in st.models for s in st.model_seeds(m)}
    calls = []

    def fake_generate(params, cfg, prompt, new_tokens, eos_id):
        calls.append(params)
        assert prompt.shape == (1, st.P["latency"]["prompt_len"]) and new_tokens == 4 and eos_id == -1
        return np.zeros((1, new_tokens), np.int32)

    clock = iter(np.arange(0.0, 100.0, 0.004))
    monkeypatch.setattr(ss.generate, "generate", fake_generate)
    monkeypatch.setattr(ss.time, "perf_counter", lambda: float(next(clock)))
    lat = st.latency()
    # seeds outermost; per seed one compiling run per architecture, then rounds over all of them; L-S-nowarm
    # reuses L-S's measurement
    assert calls == ["S-S/0", "L-S/0", "dec-S/0"] * 3 + ["S-S/1", "L-S/1"] * 3
    assert lat["L-S-nowarm"] == lat["L-S"] and set(lat["dec-S"]) == {0} and set(lat["S-S"]) == {0, 1}
    assert lat["S-S"][0] == pytest.approx([1.0, 1.0])  # 4 ms per run of 4 tokens: 1 ms per generated token
    with pytest.raises(RuntimeError, match="no val: call load_data"):
        study(tok, up).latency()


def test_time_generation_runs_each_timing_on_a_micro_model(tok, up):
    st = study(tok, up, **{"latency.new_tokens": 3, "latency.runs": 2})
    times = st.time_generation(up["small"][1], up["small"][0], np.full((1, 4), 5, np.int32))
    assert len(times) == 2 and all(t > 0 for t in times)


# ------------------------------------------------------------------------------------------ claims and metrics
def test_paired_gains_are_positive_when_the_claim_holds():
    pt = {("L-S", 0): 2.0, ("S-S", 0): 2.5, ("L-S", 1): 3.0, ("S-S", 1): 2.9, ("L-S", 2): 1.0}
    it = {("L-S", 0): 0.30, ("S-S", 0): 0.20, ("L-S", 1): 0.10, ("S-S", 1): 0.25, ("L-S", 2): 0.5}
    g = ss.paired_gains(pt, it, "L-S", "S-S", [0, 1, 2])
    assert g["seeds"] == [0, 1]  # seed 2: S-S did not run
    assert g["pt_loss_gain"] == pytest.approx([0.5, -0.1])  # loss(base) - loss(model)
    assert g["it_rougeL_gain"] == pytest.approx([0.1, -0.15])  # rougeL(model) - rougeL(base)


def test_latency_ratios_per_timing_block():
    runs = {"L-S": {0: [2.0, 2.0, 4.0, 4.0], 1: [3.0, 3.0, 3.0, 3.0]}, "S-S": {0: [1.0, 1.0, 1.0, 1.0],
            1: [2.0, 2.0, 2.0, 2.0]}, "dec-L": {0: [4.0, 4.0, 8.0, 8.0]}, "L-S-nowarm": {0: [9.0] * 4}}
    r = ss.latency_ratios(runs, ["S-S", "L-S", "L-S-nowarm", "dec-L"], [0, 1], blocks=2)
    assert list(r) == ["S-S", "dec-L"]  # L-S-nowarm is no latency baseline
    # consecutive blocks of each seed's rounds: a block's ratio of medians, not a seed's
    assert r["S-S"] == {"seeds": [0, 0, 1, 1], "blocks": [0, 1, 0, 1], "values": pytest.approx([2.0, 4.0, 1.5, 1.5])}
    assert r["dec-L"] == {"seeds": [0, 0], "blocks": [0, 1], "values": [0.5, 0.5]}
    assert ss.latency_ratios(runs, ["S-S", "L-S"], [0], blocks=1)["S-S"]["values"] == [3.0]  # median of [2, 2, 4, 4]
    assert ss.latency_ratios(runs, ["S-S", "dec-L"], [0, 1]) == {}
    with pytest.raises(ValueError, match="5 blocks"):
        ss.latency_ratios(runs, ["S-S", "L-S"], [0], blocks=5)
    with pytest.raises(ValueError, match=">= 1"):
        ss.latency_ratios(runs, ["S-S", "L-S"], [0], blocks=0)


def _runs():
    models, rows, it = ["S-S", "L-S", "dec-S"], [], []
    for i, m in enumerate(models):
        rows.append({"model": m, "seed": 0, "step": 0, "pt_loss": 9.0 + i})
        for s in (1, 0):  # out of seed order on purpose
            rows.append({"model": m, "seed": s, "step": 4, "pt_loss": 5.0 - i + 0.1 * s, "pt_accuracy": 0.1})
            it.append({"model": m, "seed": s, "exact_match": 0.0, "rougeL": 0.2 + 0.1 * i, "token_f1": 0.3})
    latency = {m: {s: [1.0 + i, 3.0 + i, 2.0 + i] for s in (0, 1)} for i, m in enumerate(models)}
    return models, pd.DataFrame(rows), pd.DataFrame(it), latency


def test_claims_and_their_table():
    models, pt_runs, it_runs, latency = _runs()
    c = ss.claims(pt_runs, it_runs, latency, models, [0, 1])
    assert list(c) == ["L-S beats S-S", "S-S beats dec-S", ss.LATENCY_CLAIM]  # claims whose models ran
    assert c["L-S beats S-S"]["pt_loss_gain"] == pytest.approx([1.0, 1.0])  # step-0 rows are not compared
    assert c["L-S beats S-S"]["it_rougeL_gain"] == pytest.approx([0.1, 0.1])
    assert c["S-S beats dec-S"]["it_rougeL_gain"] == pytest.approx([-0.2, -0.2])
    assert c["L-S beats S-S"]["paper"] == "9B-2B > 2B-2B by > 3 points"
    assert c[ss.LATENCY_CLAIM]["ratio_to_S-S"] == {"seeds": [0, 1], "blocks": [0, 0],
                                                   "values": pytest.approx([1.5, 1.5])}  # medians 3 / 2
    t = ss.claims_table(c)
    assert list(t["measure"]) == ["pt_loss_gain", "it_rougeL_gain"] * 2 + ["latency L-S / S-S", "latency L-S / dec-S"]
    assert list(t["positive in"][:4]) == ["2/2", "2/2", "0/2", "0/2"] and t["seeds"].tolist() == [2] * 6
    assert t["mean"].iloc[-1] == pytest.approx(3.0 / 4.0)
    blocked = ss.claims_table(ss.claims(pt_runs, it_runs, latency, models, [0, 1], latency_blocks=3))
    lat = blocked[blocked["claim"] == ss.LATENCY_CLAIM]
    assert lat["n"].tolist() == [6, 6] and lat["seeds"].tolist() == [2, 2]  # 3 one-run blocks per seed


def test_metrics_record(tok, up):
    models, pt_runs, it_runs, latency = _runs()
    st = study(tok, up, models=models, first_seed_only=["dec-S"])
    latency["dec-S"] = {0: latency["dec-S"][0]}
    c = ss.claims(pt_runs, it_runs, latency, models, st.seeds)
    m = st.metrics(pt_runs, it_runs, latency, c, total_seconds=12.0)
    assert set(m) == {"seeds", "model_seeds", "params", "pt_loss", "pt_loss_step0", "it_rougeL", "it_exact_match",
                      "it_token_f1", "inference_gflops", "latency_ms_per_token", "latency_ms_per_token_runs",
                      "claims", "seconds", "utilisation"}
    assert {"wall_seconds", "fraction_in_steps"} <= set(m["utilisation"])  # the study's clock: nothing timed yet
    assert m["pt_loss"]["L-S"] == pytest.approx([4.0, 4.1])  # seed order, adapted rows only
    assert m["pt_loss_step0"] == {"S-S": 9.0, "L-S": 10.0, "dec-S": 11.0}
    assert m["latency_ms_per_token"] == {"S-S": [2.0, 2.0], "L-S": [3.0, 3.0], "dec-S": [4.0]}
    assert m["latency_ms_per_token_runs"]["dec-S"] == [[3.0, 5.0, 4.0]]
    assert "paper" not in m["claims"]["L-S beats S-S"] and m["seconds"]["total"] == 12.0
    assert m["params"]["L-S"] > m["params"]["S-S"] > m["params"]["dec-S"] and m["model_seeds"]["dec-S"] == [0]
    summary = ss.with_latency(st.summary_table(ss.pt_table(pt_runs, models), ss.it_table(it_runs, models)), latency)
    assert summary.set_index("model")["latency / dec-S"].to_dict() == pytest.approx({"S-S": 0.5, "L-S": 0.75,
                                                                                      "dec-S": 1.0})


def test_a_preset_without_the_it_analogue_runs_the_rest(tok, up):
    """`it: null` (the cpu preset): no IT data or runs, NaN IT scores, no IT gains, keys or task scores in the
    record, inference FLOPs of the latency run's shape; IT itself refuses to be read."""
    models, pt_runs, it_full, latency = _runs()
    st = study(tok, up, models=models, it=None)
    assert not st.runs_it and study(tok, up).runs_it
    with pytest.raises(RuntimeError, match="it: null"):
        _ = st.IT
    assert st.generation_shape() == (st.P["latency"]["prompt_len"], st.P["latency"]["new_tokens"])
    assert st.generation_flops("S-S") > 0
    runs, tasks, samples = st.run_it(log=None)
    assert len(runs) == len(tasks) == len(samples) == 0 and {"model", "seed", "rougeL"} <= set(runs.columns)
    assert st.it_task_scores(tasks) is None and list(ss.per_task_table(tasks, models).columns) == ["task", *models]
    table = ss.it_table(runs, models)
    assert list(table["model"]) == models and table["rougeL mean"].isna().all() and table["rougeL std"].isna().all()
    c = ss.claims(pt_runs, runs, latency, models, st.seeds)
    assert "it_rougeL_gain" not in c["S-S beats dec-S"] and c["S-S beats dec-S"]["pt_loss_gain"]
    assert list(ss.claims_table(c)["measure"][:2]) == ["pt_loss_gain", "pt_loss_gain"]
    m = st.metrics(pt_runs, runs, latency, c, total_seconds=1.0, task_rows=tasks)
    assert not {"it_rougeL", "it_exact_match", "it_token_f1", "task_scores"} & set(m)
    summary = st.summary_table(ss.pt_table(pt_runs, models), table)
    assert summary["rougeL mean"].isna().all() and summary["PT loss"].notna().all()
    # a model with one IT seed keeps std 0, one without runs NaN
    one = ss.it_table(it_full[(it_full["model"] != "dec-S") & (it_full["seed"] == 0)], models).set_index("model")
    assert one.loc["S-S", "rougeL std"] == 0.0 and np.isnan(one.loc["dec-S", "rougeL mean"])


@pytest.mark.parametrize("scale", ["smoke", "cpu", "gpu"])
def test_presets_adaptation_rows_fit_the_corpus(tok, scale):
    """Each runnable sizes preset's PrefixLM rows (pt.steps x pt.batch, drawn without repeats) and held-out rows
    pack from the corpus: `packed_rows` raises before any training when a split is too small
    (`test_packed_rows_are_full_fixed_and_name_their_split`; the gpu preset once asked for 65.5M tokens of an
    8.8M-token split). The paper preset is stated for reference only."""
    from workbench.data import load_corpus

    PT = nb.load_params("sizes", scale)["pt"]
    corpus = load_corpus()
    rows = ss.packed_rows(corpus["train"], tok, PT["steps"] * PT["batch"], PT["seq_len"])
    assert rows.shape == (PT["steps"] * PT["batch"], PT["seq_len"]) and (rows != 0).all()
    assert ss.packed_rows(corpus["validation"], tok, PT["eval_rows"], PT["seq_len"]).shape[0] == PT["eval_rows"]
