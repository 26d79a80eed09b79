"""The T5Gemma size study: balanced and unbalanced encoder-decoders against their decoder-only sources.

Experiment logic behind `notebooks/03_sizes.ipynb` (arXiv 2504.06225, §5, on two stand-in decoders S and L):

* `SPECS` names the six models: S-S, L-L, L-S (cross-attention warmed up alone first), L-S-nowarm, dec-S, dec-L;
* `upstream` loads one source decoder from the zoo (or a checkpoint folder) with a fingerprint of its files;
* `packed_rows` packs random corpus documents into full PrefixLM rows; `it_data` builds the instruction-tuning
  analogue's train / held-out arrays from the text-to-text mixture;
* `SizesStudy` adapts every model (PrefixLM, KD from a decoder-only teacher; the decoder-only baselines continue
  on the same rows), finetunes and scores it on the mixture, and times batch-1 generation; every training run
  resumes from a checkpoint keyed by what determines it (`pt_key`, upstream fingerprints included);
* `claims` gives the per-seed paired differences the report judges, signed so that a positive value supports
  the claim (PT gain = loss(base) − loss(model), IT gain = ROUGE-L(model) − ROUGE-L(base)), and the per-seed
  latency ratios of L-S to the others.

Seeds set the adaptation / finetuning batch order and L-S's random cross-attention; the data are fixed and shared
by every run, so differences between models on one seed are paired.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from workbench import adapt, evaluate, flops, generate, objectives, recipes, uncertainty, zoo
from workbench import notebook as nb
from workbench.clock import Clock
from workbench.config import EncDecConfig, GemmaConfig, encdec_config
from workbench.data import lm_arrays, load_corpus, load_task, tokenize_seq2seq
from workbench.data.pipeline import prompt_rows_that_fit
from workbench.models import model_for
from workbench.train import TrainConfig, TrainResult, train

Params = Any
ROLES = ("small", "large")
SPECS: dict[str, dict[str, Any]] = {  # encoder / decoder source; warmup: cross-attention alone for pt.cross_attn_warmup
    "S-S": {"kind": "encdec", "enc": "small", "dec": "small", "warmup": False},
    "L-L": {"kind": "encdec", "enc": "large", "dec": "large", "warmup": False},
    "L-S": {"kind": "encdec", "enc": "large", "dec": "small", "warmup": True},
    "L-S-nowarm": {"kind": "encdec", "enc": "large", "dec": "small", "warmup": False},
    "dec-S": {"kind": "decoder", "dec": "small"},
    "dec-L": {"kind": "decoder", "dec": "large"},
}
PAIRED_CLAIMS: tuple[tuple[str, str, str, str], ...] = (  # name, model, baseline, what the paper reports
    ("L-S beats S-S", "L-S", "S-S", "9B-2B > 2B-2B by > 3 points"),
    ("S-S beats dec-S", "S-S", "dec-S", "2B-2B: +1.8 PT, +7.1 IT over Gemma 2 2B"),
    ("L-L beats dec-L", "L-L", "dec-L", "9B-9B: +1.4 PT, +4.9 IT over Gemma 2 9B"),
    ("warm-up helps L-S", "L-S", "L-S-nowarm", "62.5 (K=1000) vs 61.8 (no warm-up)"),
)
LATENCY_CLAIM = "L-S has S-like latency"
LATENCY_PAPER = "9B-2B latency ~ 2B-2B, well below 9B-9B"
LATENCY_OTHERS = ("S-S", "L-L", "dec-S", "dec-L")  # L-S's latency is divided by each of these per seed
Upstream = tuple[GemmaConfig, Params, str]  # (config, params, fingerprint)


def xla_fast_compile() -> None:
    """Let XLA optimise less (tiny models: compiling dominates, ~3x faster compiles, ~30% slower steps). Takes
    effect only when called before JAX's backend starts."""
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
                               " --xla_llvm_disable_expensive_passes=true").strip()


def check_models(models: Sequence[str]) -> list[str]:
    """`models` as a list; ValueError naming the unknown ones and the known `SPECS`."""
    if unknown := [m for m in models if m not in SPECS]:
        raise ValueError(f"unknown models {unknown}; known: {list(SPECS)}")
    return list(models)


def is_decoder(m: str) -> bool:
    """Whether model `m` is a decoder-only baseline (else an encoder-decoder)."""
    return SPECS[check_models([m])[0]]["kind"] == "decoder"


def fingerprint(folder: str | os.PathLike) -> str:
    """16 hex digits of SHA-256 over the names and bytes of the files directly inside `folder` (sorted)."""
    digest = hashlib.sha256()
    for f in sorted(p for p in Path(folder).iterdir() if p.is_file()):
        digest.update(f.name.encode() + f.read_bytes())
    return digest.hexdigest()[:16]


def upstream(name_or_dir: str, scale: str, stand_in_for: str, role: str) -> Upstream:
    """(config, params, fingerprint) of a source decoder: a checkpoint directory, else zoo `<scale>/<name>`.
    FileNotFoundError naming 01_pretrain when the zoo lacks it."""
    ref = name_or_dir if Path(name_or_dir).is_dir() else f"{scale}/{name_or_dir}"
    if not zoo.exists(ref):
        raise FileNotFoundError(
            f"upstream model {ref!r} ({role}, standing in for {stand_in_for}) is missing from "
            f"{zoo.models_dir()}: run notebooks/01_pretrain.ipynb first "
            f"(`python -m workbench.reproduce --scale {scale} --only pretrain`), or set upstream.{role} to a "
            f"checkpoint directory")
    cfg, params = zoo.load(ref)
    return cfg, params, fingerprint(zoo.path(ref))


def packed_texts(corpus_split: Any, n_rows: int, seq_len: int, seed: int = 0) -> list[str]:
    """The documents `packed_rows` packs: random documents of the split (order fixed by `seed`, each cut at
    40,000 characters) until they hold ~4.5 characters per token of `n_rows` x `seq_len`."""
    order = np.random.default_rng(seed).permutation(len(corpus_split))
    need, texts, chars = int(n_rows * seq_len * 4.5) + 2000, [], 0  # ~3.7 characters per token
    for start in range(0, len(order), 256):
        for t in corpus_split.select(order[start:start + 256])["text"]:
            texts.append(t[:40_000])
            chars += len(texts[-1])
        if chars >= need:
            break
    return texts


def packed_rows(corpus_split: Any, tokenizer: Any, n_rows: int, seq_len: int, seed: int = 0,
                name: str | None = None) -> np.ndarray:
    """[n_rows, seq_len] full rows packed (EOS-separated) from random documents of a `datasets` split (the
    documents fixed by `seed`: `packed_texts`). ValueError naming the split (`name`, else the split's own) when
    too few."""
    rows_NxL = lm_arrays(packed_texts(corpus_split, n_rows, seq_len, seed), tokenizer, seq_len)
    rows_NxL = rows_NxL[(rows_NxL != 0).sum(1) == seq_len]  # full rows only
    if len(rows_NxL) < n_rows:
        split = name or (str(corpus_split.split) if getattr(corpus_split, "split", None) else "corpus split")
        raise ValueError(f"{split}: only {len(rows_NxL)} rows of {seq_len} tokens, need {n_rows}")
    return rows_NxL[:n_rows]


@dataclasses.dataclass(frozen=True)
class ITData:
    """The instruction-tuning analogue's data: `train` / `test` seq2seq arrays ({'inputs', 'targets'}), the
    held-out references and task names (row order of `test`), the rows per split left out because their prompt
    cannot fit, and the held-out rows per task."""

    train: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    refs: list[str]
    tasks: list[str]
    dropped: dict[str, int]
    per_task: dict[str, int]
    # closed-set task -> answer -> its tokenized target row (the answers of the training rows; filled when the
    # preset's `rank_closed_set` is true: those tasks are scored by rank classification among these answers)
    candidates: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)


def it_data(tokenizer: Any, it: Mapping[str, Any]) -> ITData:
    """The `it` preset's mixture: `train_examples` training rows (train split, shuffled with seed 0) and up to
    `eval_per_task` held-out rows per task (test split). Prompts are shortened in their passage only; rows
    whose instruction + question + options alone exceed `max_input` are left out, never cut before the
    question."""
    mix = load_task(it["task"])
    train_split = mix["train"].shuffle(seed=0)
    train_split = train_split.select(prompt_rows_that_fit(train_split, tokenizer, it["max_input"]))
    used = train_split.select(range(min(it["train_examples"], len(train_split))))
    test = mix["test"].shuffle(seed=0)
    fits = prompt_rows_that_fit(test, tokenizer, it["max_input"])
    dropped = {"train": len(mix["train"]) - len(train_split), "test": len(test) - len(fits)}
    test = test.select(fits)
    keep, per_task = [], {}
    for i, task in enumerate(test["task"]):
        if per_task.get(task, 0) < it["eval_per_task"]:
            keep.append(i)
            per_task[task] = per_task.get(task, 0) + 1
    test = test.select(keep)
    train_arrays = tokenize_seq2seq(used, tokenizer, it["max_input"], it["max_target"])
    candidates: dict[str, dict[str, np.ndarray]] = {}
    if it.get("rank_closed_set", False):
        for i, (task, answer) in enumerate(zip(used["task"], used["targets"], strict=True)):
            if task in CLOSED_SET:
                candidates.setdefault(task, {}).setdefault(answer, train_arrays["targets"][i])
    return ITData(train=train_arrays, test=tokenize_seq2seq(test, tokenizer, it["max_input"], it["max_target"]),
                  refs=list(test["targets"]), tasks=list(test["task"]), dropped=dropped, per_task=per_task,
                  candidates=candidates)


def ranked_answers(loss_fn: Callable, params: Params, it: ITData, batch_size: int) -> dict[int, str]:
    """Held-out row -> the answer rank classification picks (`evaluate.rank_classify`: the highest
    log-likelihood among its task's training answers), for the rows of the tasks in `it.candidates`."""
    out: dict[int, str] = {}
    for task, answers in sorted(it.candidates.items()):
        idx = [i for i, t in enumerate(it.tasks) if t == task]
        if not idx:
            continue
        names = sorted(answers)
        ll_NxC = evaluate.rank_classify(loss_fn, params, it.test["inputs"][idx],
                                        np.stack([answers[a] for a in names]), batch_size)
        out.update({i: names[j] for i, j in zip(idx, ll_NxC.argmax(axis=1), strict=True)})
    return out


def n_params(cfg: GemmaConfig | EncDecConfig) -> int:
    return model_for(cfg).param_count()


@dataclasses.dataclass
class SizesStudy:
    """The size study of preset `P` (notebooks/params/sizes/<scale>.yaml) over `seeds`.

    `upstream`: role ('small', 'large') -> (config, params, fingerprint). `ckpt_root`: the folder of this run's
    checkpoints, or None for `nb.checkpoint_dir` (reused by a later run). `load_data` fills `pt_train`, `val`
    and `it`; `run_pt` fills `pt_params` ((model, seed) -> adapted params); `seconds` holds the wall time of
    each section; `clock` the seconds inside training / evaluation / generation calls and the training FLOPs
    (give it the machine's matmul peak for the utilisation figures).
    """

    P: Mapping[str, Any]
    seeds: list[int]
    tokenizer: Any
    upstream: Mapping[str, Upstream]
    ckpt_root: Path | None = None
    pt_train: np.ndarray | None = None  # [N, seq_len] packed training rows
    val: dict[str, np.ndarray] | None = None  # held-out PrefixLM split {'inputs', 'targets'}
    it: ITData | None = None
    pt_params: dict[tuple[str, int], Params] = dataclasses.field(default_factory=dict)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    _batches: dict[tuple[int, str | None], Callable] = dataclasses.field(default_factory=dict, repr=False)
    clock: Clock = dataclasses.field(default_factory=Clock)  # time in training / evaluation / generation

    def __post_init__(self) -> None:
        self.seeds = [int(s) for s in self.seeds]
        if missing := [r for r in ROLES if r not in self.upstream]:
            raise ValueError(f"upstream models missing for {missing}")
        small, large = (self.upstream[r][0] for r in ROLES)
        if not small.vocab_size == large.vocab_size >= self.tokenizer.vocab_size:
            raise ValueError("S, L and the tokenizer must share one vocabulary")
        check_models(self.P["models"])

    # -------------------------------------------------------------------------------------- the models
    @property
    def PT(self) -> Mapping[str, Any]:
        return self.P["pt"]

    @property
    def IT(self) -> Mapping[str, Any]:
        if not self.runs_it:
            raise RuntimeError("this sizes preset has no instruction-tuning analogue (`it: null`)")
        return self.P["it"]

    @property
    def runs_it(self) -> bool:
        """Whether the preset runs the instruction-tuning analogue (`it` is not null)."""
        return self.P.get("it") is not None

    @property
    def models(self) -> list[str]:
        return list(self.P["models"])

    def spec(self, m: str) -> dict[str, Any]:
        """`SPECS[m]` with the warm-up as a number of steps (pt.cross_attn_warmup for L-S, else 0)."""
        s = dict(SPECS[check_models([m])[0]])
        if "warmup" in s:
            s["warmup"] = self.PT["cross_attn_warmup"] if s["warmup"] else 0
        return s

    def model_config(self, m: str) -> GemmaConfig | EncDecConfig:
        """The decoder-only source, or the encoder-decoder of its sources in their family's T5Gemma style
        (`encdec_config`: Gemma 2 untied and separate attention, Gemma 3 tied and merged as T5Gemma 2)."""
        s, cfg = self.spec(m), {r: u[0] for r, u in self.upstream.items()}
        return encdec_config(cfg[s["enc"]], cfg[s["dec"]]) if s["kind"] == "encdec" else cfg[s["dec"]]

    def teacher_role(self, m: str) -> str:
        """The KD teacher: the model's decoder source (`teacher: decoder_half`) or the preset's role."""
        return self.spec(m)["dec"] if self.P["teacher"] == "decoder_half" else self.P["teacher"]

    def uses_kd(self, m: str) -> bool:
        return self.spec(m)["kind"] == "encdec" or bool(self.P["decoder_only_kd"])

    def model_seeds(self, m: str) -> list[int]:
        return self.seeds[:1] if m in self.P["first_seed_only"] else self.seeds

    def generation_shape(self) -> tuple[int, int]:
        """(prompt tokens, new tokens) of one inference example: the IT analogue's it.max_input and
        it.max_new_tokens, or without it (`it: null`) the latency run's prompt_len and new_tokens."""
        if self.runs_it:
            return int(self.IT["max_input"]), int(self.IT["max_new_tokens"])
        return int(self.P["latency"]["prompt_len"]), int(self.P["latency"]["new_tokens"])

    def generation_flops(self, m: str) -> float:
        """`flops.generation_flops` of one example of `generation_shape`."""
        return flops.generation_flops(self.model_config(m), *self.generation_shape())

    def models_table(self) -> Any:
        """One row per model: sources, cross-attention init, warm-up K, KD teacher, parameters, inference cost."""
        import pandas as pd

        rows = []
        for m in self.models:
            s = self.spec(m)
            rows.append({"model": m, "encoder": s.get("enc", "-"), "decoder": s["dec"],
                         "cross-attention": ("-" if s["kind"] == "decoder" else "copied" if s["enc"] == s["dec"]
                                             else "random"),
                         "warm-up K": s.get("warmup", 0),
                         "KD teacher": self.teacher_role(m) if self.uses_kd(m) else "-",
                         "params": n_params(self.model_config(m)), "generation GFLOPs": self.generation_flops(m) / 1e9,
                         "seeds": len(self.model_seeds(m))})
        return pd.DataFrame(rows)

    def describe_upstream(self) -> str:
        """A line per source decoder: shape, parameters, fingerprint."""
        out = []
        for role in ROLES:
            c, _, fp = self.upstream[role]
            out.append(f"{role} ({self.P['stand_in_for'][role]}): {c.num_layers} layers, d {c.embed_dim}, "
                       f"{c.num_heads}x{c.head_dim} heads, {n_params(c):,} params, fingerprint {fp}")
        return "\n".join(out)

    # -------------------------------------------------------------------------------------- data
    def load_data(self, corpus: Any = None) -> str:
        """Fill `pt_train` (pt.steps x pt.batch rows of the corpus train split), `val` (pt.eval_rows rows of its
        validation split, PrefixLM-split) and `it` (`it_data`, unless the preset has `it: null`); returns a
        summary."""
        t0 = time.perf_counter()
        corpus = load_corpus() if corpus is None else corpus
        PT = self.PT
        self.pt_train = packed_rows(corpus["train"], self.tokenizer, PT["steps"] * PT["batch"], PT["seq_len"])
        self.val = recipes.prefix_lm_split(packed_rows(corpus["validation"], self.tokenizer, PT["eval_rows"],
                                                       PT["seq_len"]))
        self.it = it_data(self.tokenizer, self.IT) if self.runs_it else None
        self.seconds["data"] = time.perf_counter() - t0
        out = (f"PrefixLM: {self.pt_train.shape[0]} train rows x {PT['seq_len']} tokens "
               f"({self.pt_train.size:,} tokens per model and seed), {len(self.val['inputs'])} held-out rows\n")
        if self.it is None:
            return out + "IT: not run by this preset (`it: null`)"
        return out + (f"IT: {len(self.it.train['inputs'])} train examples, {len(self.it.refs)} held-out examples "
                      f"{self.it.per_task}; rows whose prompt does not fit max_input={self.IT['max_input']} even "
                      f"without its passage: {self.it.dropped}")

    def _need(self, name: str) -> Any:
        """The data field `name`; RuntimeError when `load_data` has not filled it."""
        if (value := getattr(self, name)) is None:
            raise RuntimeError(f"SizesStudy has no {name}: call load_data() first")
        return value

    # -------------------------------------------------------------------------------------- adaptation (PT)
    def ckpt_dir(self, name: str, key: Mapping[str, Any]) -> Path:
        if self.ckpt_root is None:
            return nb.checkpoint_dir(f"sizes-{name}", key)
        return Path(self.ckpt_root) / f"{name}-{nb.cache_key(key)}"

    def init_params(self, m: str, seed: int) -> Params:
        """The upstream weights (decoder-only) or the encoder-decoder made from them; L-S's cross-attention is
        random (key `seed`), a balanced pair's copied from self-attention."""
        s, params = self.spec(m), {r: u[1] for r, u in self.upstream.items()}
        if s["kind"] == "decoder":
            return params[s["dec"]]
        cfg = self.model_config(m)
        if s["enc"] == s["dec"]:
            return adapt.decoder_to_encdec(params[s["dec"]], cfg)
        return adapt.decoder_to_encdec(params[s["dec"]], cfg, enc_params=params[s["enc"]], rng=jax.random.key(seed))

    def eval_fn(self, m: str) -> Callable:
        """CE on the target half (no KD): training curves, held-out loss and the IT finetune."""
        cfg = self.model_config(m)
        if isinstance(cfg, EncDecConfig):
            return objectives.encdec_seq2seq_loss(cfg)
        return objectives.decoder_seq2seq_loss(cfg, attention=self.P["decoder_only_attention"])

    def pt_loss_fn(self, m: str) -> Callable:
        """(1 - pt.kd_weight) CE + pt.kd_weight KD for models distilled (`uses_kd`), else CE."""
        cfg, PT = self.model_config(m), self.PT
        kd = PT["kd_weight"] if self.uses_kd(m) else 0.0
        if isinstance(cfg, EncDecConfig):
            return objectives.encdec_seq2seq_loss(cfg, kd_weight=kd, temperature=PT["temperature"])
        return objectives.decoder_seq2seq_loss(cfg, attention=self.P["decoder_only_attention"], kd_weight=kd,
                                               temperature=PT["temperature"])

    def pt_batches(self, seed: int, teacher: str | None) -> Callable:
        """PrefixLM batches of one seed; with a teacher, its top-k logits are computed once per step and shared by
        every model distilled from it (S-S, L-S and L-S-nowarm share S)."""
        key = (int(seed), teacher)
        if key not in self._batches:
            base = recipes.prefix_lm_batches(self._need("pt_train"), self.PT["batch"], seed)
            if teacher is None:
                self._batches[key] = base
            else:
                cfg, params, _ = self.upstream[teacher]
                self._batches[key] = functools.cache(recipes.with_teacher(base, params, cfg, k=self.PT["kd_topk"]))
        return self._batches[key]

    def pt_key(self, m: str, seed: int) -> dict[str, Any]:
        """What determines an adaptation checkpoint: model, spec, seed, the pt preset, teacher, decoder-only
        attention and the fingerprints of every upstream model it reads."""
        s = self.spec(m)
        return {"model": m, "spec": s, "seed": seed, "pt": self.PT,
                "teacher": self.teacher_role(m) if self.uses_kd(m) else None,
                "decoder_only_attention": self.P["decoder_only_attention"],
                "upstream": {r: self.upstream[r][2] for r in {s["dec"], s.get("enc", s["dec"]), self.teacher_role(m)}}}

    def train_flops(self, m: str, batch: int, src_len: int, tgt_len: int) -> float:
        """Matmul FLOPs of one training step of `m` on `batch` (source, target) pairs (decoder-only: the two
        concatenated, the LM head on the targets)."""
        return batch * model_for(self.model_config(m)).train_flops_per_example(src_len, tgt_len)

    def adapt(self, m: str, seed: int) -> TrainResult:
        """Adapt (or, decoder-only, continue) model `m` for pt.steps; L-S trains only its cross-attention for the
        first pt.cross_attn_warmup steps. Resumes from its checkpoint (`pt_key`)."""
        s, PT = self.spec(m), self.PT
        tc = TrainConfig(steps=PT["steps"], learning_rate=PT["learning_rate"], warmup_steps=PT["warmup_steps"],
                         schedule=PT["schedule"], seed=seed, checkpoint_every=PT["steps"],
                         freeze_steps=s.get("warmup", 0),
                         trainable=adapt.cross_attention_only if s.get("warmup", 0) else None)
        get_batch = self.pt_batches(seed, self.teacher_role(m) if self.uses_kd(m) else None)
        out_dir = self.ckpt_dir(f"pt-{m}-s{seed}", self.pt_key(m, seed))
        half = PT["seq_len"] // 2
        with self.clock("train") as span:
            res = train(self.pt_loss_fn(m), self.init_params(m, seed), get_batch, tc, out_dir=str(out_dir),
                        progress=True)
            span.flops = res.steps_run * self.train_flops(m, PT["batch"], half, PT["seq_len"] - half)
        return res

    def run_pt(self, log: Callable[[str], Any] | None = print) -> tuple[Any, Any]:
        """(runs, curves) DataFrames: held-out PrefixLM loss of every model at step 0 (first seed) and after
        adaptation (every seed of `model_seeds`), and the training CE per step. Fills `pt_params`; saves the
        adapted encoder-decoders to the zoo (`<scale>/encdec-<model>-s<seed>`) when `save_to_zoo`."""
        import pandas as pd

        t0 = time.perf_counter()
        val = self._need("val")
        PT, rows, curves = self.PT, [], []
        for m in self.models:  # step 0: the adapted (or upstream) weights before any training
            rows.append({"model": m, "seed": self.seeds[0], "step": 0,
                         "pt_loss": evaluate.eval_loss(self.eval_fn(m), self.init_params(m, self.seeds[0]), val,
                                                       PT["eval_batch"])["loss"]})
        for seed in self.seeds:
            for m in self.models:
                if seed not in self.model_seeds(m):
                    continue
                res = self.adapt(m, seed)
                self.pt_params[m, seed] = res.params
                with self.clock("eval"):
                    ev = evaluate.eval_loss(self.eval_fn(m), res.params, val, PT["eval_batch"])
                rows.append({"model": m, "seed": seed, "step": res.step, "pt_loss": ev["loss"],
                             "pt_accuracy": ev["accuracy"]})
                curves += [{"model": m, "seed": seed, "step": h["step"] + 1, "train_ce": h.get("ce", h["loss"])}
                           for h in res.history]
                if self.P["save_to_zoo"] and not is_decoder(m):
                    zoo.save(f"{self.P['scale']}/encdec-{m}-s{seed}", self.model_config(m), res.params)
                if log is not None:
                    log(f"{m} seed {seed}: held-out PrefixLM loss {ev['loss']:.4f}")
        self.seconds["adaptation"] = time.perf_counter() - t0
        return pd.DataFrame(rows), pd.DataFrame(curves)

    # -------------------------------------------------------------------------------------- instruction tuning
    def instruction_tune(self, m: str, seed: int, params: Params) -> dict[str, Any]:
        """Finetune `params` (model `m`) on the mixture (seq2seq CE, it.steps), answer the held-out rows (closed-set
        tasks by rank classification when `it.rank_closed_set`, the others by greedy generation). {'scores': text
        metrics, 'tasks': per-task rows, 'samples': the first 3 answers, 'train_ce': CE on the whole training split}.
        Resumes from its checkpoint (keyed by `pt_key` and the it preset)."""
        it: ITData = self._need("it")
        IT = self.IT
        tc = TrainConfig(steps=IT["steps"], learning_rate=IT["learning_rate"], warmup_steps=IT["warmup_steps"],
                         seed=seed, checkpoint_every=IT["steps"])
        key = {"pt": self.pt_key(m, seed), "it": IT}
        with self.clock("train") as span:
            res = train(self.eval_fn(m), params, recipes.row_batches(it.train, IT["batch"], seed), tc,
                        out_dir=str(self.ckpt_dir(f"it-{m}-s{seed}", key)), progress=True)
            span.flops = res.steps_run * self.train_flops(m, IT["batch"], it.train["inputs"].shape[1],
                                                          it.train["targets"].shape[1])
        with self.clock("eval"):
            ranked = ranked_answers(self.eval_fn(m), res.params, it, IT["gen_batch"])
        gen_rows = [i for i in range(len(it.tasks)) if i not in ranked]
        with self.clock("generate"):
            generated = evaluate.generate_texts(res.params, self.model_config(m), self.tokenizer,
                                                it.test["inputs"][gen_rows], IT["max_new_tokens"], IT["gen_batch"]
                                                ) if gen_rows else []
        preds = [ranked.get(i, "") for i in range(len(it.tasks))]
        for i, text in zip(gen_rows, generated, strict=True):
            preds[i] = text
        scores = evaluate.text_metrics(preds, it.refs)
        with self.clock("eval"):
            train_ce = recipes.train_set_loss(self.eval_fn(m), res.params, it.train, IT["gen_batch"])["loss"]
        tasks = []
        for task in sorted(set(it.tasks)):
            idx = [i for i, t in enumerate(it.tasks) if t == task]
            tasks.append({"model": m, "seed": seed, "task": task,
                          **evaluate.text_metrics([preds[i] for i in idx], [it.refs[i] for i in idx])})
        samples = [{"model": m, "task": it.tasks[i], "reference": it.refs[i], "generated": preds[i]}
                   for i in range(min(3, len(preds)))]
        return {"scores": scores, "tasks": tasks, "samples": samples, "train_ce": train_ce}

    def run_it(self, log: Callable[[str], Any] | None = print) -> tuple[Any, Any, Any]:
        """(runs, per-task rows, samples of the first seed) DataFrames: `instruction_tune` of every adapted model;
        three empty frames (with their columns) when the preset has `it: null`."""
        import pandas as pd

        if not self.runs_it:
            return (pd.DataFrame(columns=["model", "seed", *IT_SCORES, "it_train_ce"]),
                    pd.DataFrame(columns=["model", "seed", "task", *IT_SCORES]),
                    pd.DataFrame(columns=["model", "task", "reference", "generated"]))
        t0 = time.perf_counter()
        runs, tasks, samples = [], [], []
        for seed in self.seeds:
            for m in self.models:
                if seed not in self.model_seeds(m):
                    continue
                r = self.instruction_tune(m, seed, self.pt_params[m, seed])
                runs.append({"model": m, "seed": seed, **r["scores"], "it_train_ce": r["train_ce"]})
                tasks += r["tasks"]
                if seed == self.seeds[0]:
                    samples += r["samples"]
                if log is not None:
                    log(f"{m} seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in r["scores"].items()))
        self.seconds["instruction_tuning"] = time.perf_counter() - t0
        return pd.DataFrame(runs), pd.DataFrame(tasks), pd.DataFrame(samples)

    # -------------------------------------------------------------------------------------- latency
    def time_generation(self, params: Params, cfg: GemmaConfig | EncDecConfig, prompt_1xS: np.ndarray
                        ) -> list[float]:
        """Wall seconds of latency.runs batch-1 generations of latency.new_tokens tokens after one compiling run;
        eos_id=-1 never stops early. (`latency` interleaves several models instead.)"""
        return self._timed({cfg: params}, prompt_1xS)[cfg]

    def _timed(self, by_cfg: Mapping[Any, Params], prompt_1xS: np.ndarray) -> dict[Any, list[float]]:
        """{cfg: wall seconds of each of latency.runs generations}: one compiling run per model, then rounds
        in which every model generates once, so that machine drift and other load hit all models alike."""
        new_tokens = self.P["latency"]["new_tokens"]

        def run(cfg: Any) -> None:
            jax.block_until_ready(generate.generate(by_cfg[cfg], cfg, prompt_1xS, new_tokens, eos_id=-1))

        for cfg in by_cfg:
            run(cfg)
        times: dict[Any, list[float]] = {cfg: [] for cfg in by_cfg}
        for _ in range(self.P["latency"]["runs"]):
            for cfg in by_cfg:
                t = time.perf_counter()
                run(cfg)
                times[cfg].append(time.perf_counter() - t)
        return times

    def latency(self) -> dict[str, dict[int, list[float]]]:
        """model -> seed -> ms per generated token of each timed run, for every adapted model, on the first
        latency.prompt_len tokens of the first held-out row. Seeds outermost; within a seed the models' runs
        are interleaved (`_timed`); models of one architecture (L-S, L-S-nowarm) share a seed's measurement."""
        t0 = time.perf_counter()
        LAT = self.P["latency"]
        prompt_1xS = np.asarray(self._need("val")["inputs"][:1, :LAT["prompt_len"]])
        out: dict[str, dict[int, list[float]]] = {m: {} for m in self.models}
        for s in self.seeds:
            here = [m for m in self.models if s in self.model_seeds(m)]
            by_cfg: dict[Any, Params] = {}
            for m in here:
                by_cfg.setdefault(self.model_config(m), self.pt_params[m, s])
            with self.clock("generate"):
                measured = self._timed(by_cfg, prompt_1xS)
            for m in here:
                out[m][s] = [1e3 * t / LAT["new_tokens"] for t in measured[self.model_config(m)]]
        self.seconds["latency"] = time.perf_counter() - t0
        return out

    # -------------------------------------------------------------------------------------- the record
    def summary_table(self, pt: Any, it: Any) -> Any:
        """Per model: parameters, generation GFLOPs, PT loss (± std) and ROUGE-L (± std) from `pt_table` /
        `it_table` (NaN without the IT analogue)."""
        import pandas as pd

        out = pd.DataFrame({"model": self.models})
        out["params"] = out["model"].map(lambda m: n_params(self.model_config(m)))
        out["generation GFLOPs"] = out["model"].map(self.generation_flops) / 1e9
        out = out.merge(pt[["model", "PT loss", "std"]].rename(columns={"std": "PT loss std"}), on="model")
        return out.merge(it[["model", "rougeL mean", "rougeL std"]], on="model")

    def it_task_scores(self, task_rows: Any) -> Any:
        """`it_task_scores` of `run_it`'s per-task rows against this mixture's held-out chance scores (None when
        the preset has `it: null`)."""
        if not self.runs_it:
            return None
        it: ITData = self._need("it")
        return it_task_scores(task_rows, it_chance(it.refs, it.tasks))

    def metrics(self, pt_runs: Any, it_runs: Any, latency: Mapping[str, Mapping[int, Sequence[float]]],
                claims: Mapping[str, Mapping[str, Any]], total_seconds: float, task_rows: Any = None
                ) -> dict[str, Any]:
        """The metrics record of the notebook: per model the per-seed PT losses (after adaptation) and IT scores
        in seed order (no IT keys with `it: null`), step-0 loss, parameters, inference GFLOPs, per-seed median
        latency and every timed run; `claims` without the paper's text; `seconds` per section plus the total;
        with `task_rows` and the IT analogue, the IT score of every task and model with its interval and chance
        ('task_scores')."""
        models, final = self.models, pt_runs[pt_runs["step"] > 0]
        start = pt_runs[pt_runs["step"] == 0].set_index("model")["pt_loss"]
        med = latency_medians(latency)

        def per_seed(table: Any, col: str) -> dict[str, list[float]]:
            return {m: [float(v) for v in table[table["model"] == m].sort_values("seed")[col]] for m in models}

        def per_seed_dict(by_model: Mapping[str, Mapping[int, Any]]) -> dict[str, list[Any]]:
            return {m: [by_model[m][s] for s in self.model_seeds(m)] for m in models}

        self.seconds["total"] = float(total_seconds)
        return {
            "seeds": self.seeds,
            "model_seeds": {m: self.model_seeds(m) for m in models},
            "params": {m: int(n_params(self.model_config(m))) for m in models},
            "pt_loss": per_seed(final, "pt_loss"),
            "pt_loss_step0": {m: float(start[m]) for m in models},
            **({"it_rougeL": per_seed(it_runs, "rougeL"), "it_exact_match": per_seed(it_runs, "exact_match"),
                "it_token_f1": per_seed(it_runs, "token_f1")} if len(it_runs) else {}),
            "inference_gflops": {m: self.generation_flops(m) / 1e9 for m in models},
            "latency_ms_per_token": per_seed_dict(med),
            "latency_ms_per_token_runs": per_seed_dict(latency),
            "claims": {name: {k: v for k, v in c.items() if k != "paper"} for name, c in claims.items()},
            "seconds": self.seconds,
            "utilisation": self.clock.summary(),
            **({"task_scores": uncertainty.tree(self.it_task_scores(task_rows))}
               if task_rows is not None and len(task_rows) else {}),
        }


# ------------------------------------------------------------------------------------------ tables and claims
def pt_table(pt_runs: Any, models: Sequence[str]) -> Any:
    """Per model: step-0 loss, mean / std (0 for one seed) / count of the held-out PrefixLM loss after adaptation."""
    final = pt_runs[pt_runs["step"] > 0]
    start = pt_runs[pt_runs["step"] == 0].set_index("model")["pt_loss"]
    out = (final.groupby("model", sort=False)["pt_loss"].agg(["mean", "std", "count"]).reindex(list(models))
           .rename(columns={"mean": "PT loss", "std": "std", "count": "seeds"}).reset_index())
    out.insert(1, "step-0 loss", out["model"].map(start))
    out["std"] = out["std"].fillna(0.0)
    return out


IT_SCORES = ("exact_match", "rougeL", "token_f1")  # `evaluate.text_metrics` of the IT analogue, per run


def it_table(it_runs: Any, models: Sequence[str]) -> Any:
    """Per model: mean and std (0 for one seed) of exact match, ROUGE-L and token F1; NaN for a model without
    IT runs (every model, when the preset has `it: null`)."""
    out = it_runs.groupby("model", sort=False)[list(IT_SCORES)].agg(["mean", "std"]).astype(float)
    out.columns = [f"{a} {b}" for a, b in out.columns]
    return out.fillna(0.0).reindex(list(models)).rename_axis("model").reset_index()


GENERATIVE = frozenset({"definition"})  # IT tasks scored by ROUGE-L; the others have a closed set of answers
# Tasks whose answer is one label of a small fixed set (the regression task's answers are numbers, not labels):
# with `it.rank_closed_set` they are answered by rank classification among the training answers.
CLOSED_SET = frozenset({"sentiment_binary", "genre", "retrieval", "wic"})
MIXTURE, MIXTURE_METRIC = "mixture", "mean task score"  # `it_task_scores`' row of the whole IT mixture


def it_task_metric(task: str) -> str:
    """The IT analogue's score of a task: exact match of a closed-set answer, ROUGE-L of a free definition."""
    return "rougeL" if task in GENERATIVE else "exact_match"


def it_chance(refs: Sequence[str], tasks: Sequence[str]) -> dict[str, float]:
    """task -> the score of the best constant answer on the held-out rows (any one reference repeated for every
    row): the majority answer's exact match, or the best single definition's ROUGE-L. A model that ignores its
    prompt scores at most this."""
    out = {}
    for task in sorted(set(tasks)):
        rs = [r for r, t in zip(refs, tasks, strict=True) if t == task]
        metric = it_task_metric(task)
        out[task] = max(evaluate.text_metrics([c] * len(rs), rs)[metric] for c in sorted(set(rs)))
    return out


def it_task_scores(task_rows: Any, chance: Mapping[str, float]) -> Any:
    """Per task and model: the task's IT score (`it_task_metric`), its 95% interval over seeds, the chance
    score and whether the interval clears it; plus one `MIXTURE` row per model: the mean over tasks of those
    scores (per seed) against the mean of the tasks' chance scores (the floor the IT claims need cleared)."""
    import pandas as pd

    rows = task_rows.assign(score=[r[it_task_metric(r["task"])] for _, r in task_rows.iterrows()])
    mix = rows.groupby(["model", "seed"], as_index=False)["score"].mean().assign(task=MIXTURE)
    floor = {**chance, MIXTURE: float(np.mean([chance[t] for t in sorted(set(rows["task"]))]))}
    out = uncertainty.summarise_frame(pd.concat([rows, mix], ignore_index=True), ["task", "model"], chance=floor)
    out["metric"] = [MIXTURE_METRIC if t == MIXTURE else it_task_metric(t) for t in out["task"]]
    return out


def per_task_table(task_rows: Any, models: Sequence[str]) -> Any:
    """Mean ROUGE-L per task (rows) and model (columns); no rows without IT runs."""
    import pandas as pd

    if not len(task_rows):
        return pd.DataFrame(columns=["task", *models])
    return task_rows.groupby(["task", "model"])["rougeL"].mean().unstack("model")[list(models)].reset_index()


def latency_medians(latency: Mapping[str, Mapping[int, Sequence[float]]]) -> dict[str, dict[int, float]]:
    """model -> seed -> the median of the timed runs."""
    return {m: {s: float(np.median(v)) for s, v in by_seed.items()} for m, by_seed in latency.items()}


def with_latency(summary: Any, latency: Mapping[str, Mapping[int, Sequence[float]]]) -> Any:
    """`summary` plus 'latency ms/token' (median over seeds of the per-seed medians) and 'latency / dec-S'."""
    med = latency_medians(latency)
    out = summary.copy()
    out["latency ms/token"] = out["model"].map(lambda m: float(np.median(list(med[m].values()))))
    out["latency / dec-S"] = (out["latency ms/token"] / out.set_index("model").loc["dec-S", "latency ms/token"]
                              if "dec-S" in set(out["model"]) else np.nan)
    return out


def paired_gains(pt_loss: Mapping[tuple[str, int], float], it_rougeL: Mapping[tuple[str, int], float], model: str,
                 base: str, seeds: Sequence[int]) -> dict[str, list]:
    """{'seeds', 'pt_loss_gain', 'it_rougeL_gain'} over the seeds both models ran (values keyed (model, seed)):
    PT gain = loss(base) − loss(model), IT gain = ROUGE-L(model) − ROUGE-L(base); positive favours `model`.
    'it_rougeL_gain' is left out when `it_rougeL` is empty (no IT analogue ran)."""
    both = [s for s in seeds if (model, s) in pt_loss and (base, s) in pt_loss]
    out = {"seeds": both, "pt_loss_gain": [pt_loss[base, s] - pt_loss[model, s] for s in both]}
    if it_rougeL:
        out["it_rougeL_gain"] = [it_rougeL[model, s] - it_rougeL[base, s] for s in both]
    return out


def latency_ratios(latency: Mapping[str, Mapping[int, Sequence[float]]], models: Sequence[str], seeds: Sequence[int],
                   blocks: int = 1) -> dict[str, dict[str, list]]:
    """other -> {'seeds', 'blocks', 'values'} for each of `LATENCY_OTHERS` in `models` (empty without L-S): each
    seed's timed runs (model -> seed -> ms per run, in round order) cut into `blocks` consecutive timing blocks,
    and per block L-S's median ms/token over the other's. The rounds interleave the models (`SizesStudy._timed`),
    so a block's two medians share the machine's state. Latency does not depend on the weights (greedy generation
    of a fixed token count), so the timing block, not the seed, is the replicate: 'seeds' and 'blocks' name each
    value's seed and block."""
    if blocks < 1:
        raise ValueError(f"latency blocks must be >= 1, got {blocks}")
    out: dict[str, dict[str, list]] = {}
    if "L-S" not in models:
        return out
    for other in (o for o in LATENCY_OTHERS if o in models):
        r: dict[str, list] = {"seeds": [], "blocks": [], "values": []}
        for s in (s for s in seeds if s in latency["L-S"] and s in latency[other]):
            a, b = np.asarray(latency["L-S"][s]), np.asarray(latency[other][s])
            if len(a) != len(b) or len(a) < blocks:
                raise ValueError(f"seed {s}: L-S has {len(a)} timed runs, {other} {len(b)}; {blocks} blocks need "
                                 f"the same number of runs, at least one per block")
            for k, idx in enumerate(np.array_split(np.arange(len(a)), blocks)):
                r["seeds"].append(s)
                r["blocks"].append(k)
                r["values"].append(float(np.median(a[idx]) / np.median(b[idx])))
        out[other] = r
    return out


def claims(pt_runs: Any, it_runs: Any, latency: Mapping[str, Mapping[int, Sequence[float]]], models: Sequence[str],
           seeds: Sequence[int], latency_blocks: int = 1) -> dict[str, dict[str, Any]]:
    """name -> per-seed evidence of every claim whose models ran: `paired_gains` plus the paper's 'paper' text for
    `PAIRED_CLAIMS`, and `LATENCY_CLAIM` -> {'ratio_to_<other>': `latency_ratios` over `latency_blocks` timing
    blocks per seed} when L-S was timed."""
    final = pt_runs[pt_runs["step"] > 0]
    pt_by = {(r.model, r.seed): r.pt_loss for r in final.itertuples()}
    it_by = {(r.model, r.seed): r.rougeL for r in it_runs.itertuples()}
    out: dict[str, dict[str, Any]] = {}
    for name, model, base, paper in PAIRED_CLAIMS:
        if model in models and base in models:
            out[name] = {**paired_gains(pt_by, it_by, model, base, seeds), "paper": paper}
    if ratios := latency_ratios(latency, models, seeds, latency_blocks):
        out[LATENCY_CLAIM] = {f"ratio_to_{o}": r for o, r in ratios.items()}
    return out


def claims_table(claims: Mapping[str, Mapping[str, Any]]) -> Any:
    """One row per claim and measure: the paper's statement, mean, std (ddof 1; 0 for one value), seeds, values
    ('n': one per seed, or per timing block for latency ratios), and in how many seeds a gain is positive ('-' for
    latency ratios)."""
    import pandas as pd

    def row(claim: str, measure: str, paper: str, v: np.ndarray, positive: str, seeds: int | None = None
            ) -> dict[str, Any]:
        return {"claim": claim, "measure": measure, "paper": paper, "mean": v.mean(),
                "std": v.std(ddof=1) if len(v) > 1 else 0.0, "seeds": len(v) if seeds is None else seeds,
                "n": len(v), "positive in": positive}

    rows = []
    for name, c in claims.items():
        if name == LATENCY_CLAIM:
            for key, r in c.items():
                v = np.asarray(r["values"])
                rows.append(row(name, f"latency L-S / {key.removeprefix('ratio_to_')}", LATENCY_PAPER, v, "-",
                                len(set(r["seeds"]))))
            continue
        for what in (w for w in ("pt_loss_gain", "it_rougeL_gain") if w in c):
            v = np.asarray(c[what])
            rows.append(row(name, what, c["paper"], v, f"{int((v > 0).sum())}/{len(v)}"))
    return pd.DataFrame(rows)
