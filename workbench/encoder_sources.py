"""The Gemma Encoder study on the stand-ins (`notebooks/05_gemma_encoder.ipynb`): encoders from several sources.

A *source* is where an encoder's weights come from: a stand-in decoder made bidirectional ('small', 'large'),
the same architecture with random weights ('scratch'), or the encoder of an adapted encoder-decoder ('ul2',
'prefixlm'). `load_sources` reads the upstream models from the zoo (naming the notebook that writes a missing
one); `Sources` holds one `encoder_study.Study` per source with the preset's recipe and runs one-knob variants
of the default; `VARIANTS` / `PAIRS` / `variant_claims` are the seeded comparisons behind claims E1-E5 (their
names are the metric keys of the claims registry).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from workbench import adapt, zoo
from workbench.config import EncDecConfig, GemmaConfig
from workbench.encoder_study import Study, Variant, utilisation

PRODUCER = {"small": "01_pretrain.ipynb", "large": "01_pretrain.ipynb", "ul2": "02_objectives.ipynb",
            "prefixlm": "02_objectives.ipynb"}
ENCDEC_SOURCES = ("ul2", "prefixlm")


def load_sources(models: Mapping[str, str], scale: str, needed: Sequence[str]
                 ) -> dict[str, tuple[GemmaConfig | EncDecConfig, Any]]:
    """{source: (config, params)} of zoo models `<scale>/<models[source]>`; a missing one raises
    FileNotFoundError naming the notebook (and command) that writes it."""
    out = {}
    for src in needed:
        name = f"{scale}/{models[src]}"
        if not zoo.exists(name):
            raise FileNotFoundError(f"model {name!r} is missing from the zoo ({zoo.models_dir()}): run "
                                    f"notebooks/{PRODUCER[src]} at SCALE={scale!r} first "
                                    f"(python -m workbench.reproduce --scale {scale})")
        out[src] = zoo.load(name)
    return out


def stacks(up: Mapping[str, tuple[Any, Any]]) -> dict[str, GemmaConfig]:
    """The transformer stack each source brings; 'scratch' is the small decoder's architecture."""
    out = {src: (cfg.encoder if src in ENCDEC_SOURCES else cfg) for src, (cfg, _) in up.items()}
    out["scratch"] = out["small"]
    return out


def inits(up: Mapping[str, tuple[Any, Any]]) -> dict[str, Callable]:
    """{source: init(encoder config, key) -> params} (`workbench.adapt`)."""
    def from_decoder(src: str) -> Callable:
        return lambda cfg, key: adapt.decoder_to_encoder_only(up[src][1], cfg, key)

    def from_encdec(src: str) -> Callable:
        return lambda cfg, key: adapt.encdec_to_encoder_only(up[src][1], up[src][0], cfg, key)

    out: dict[str, Callable] = {"scratch": adapt.from_scratch}
    for src in up:
        out[src] = from_encdec(src) if src in ENCDEC_SOURCES else from_decoder(src)
    return out


@dataclasses.dataclass
class Sources:
    """One `Study` per source, sharing the task arrays and the recipe; variants change one knob of `default`."""

    studies: dict[str, Study]
    default: Variant

    @classmethod
    def from_preset(cls, P: Mapping[str, Any], up: Mapping[str, tuple[Any, Any]],
                    data: Mapping[str, Mapping[str, Any]]) -> Sources:
        """The 05 preset's recipe (`steps` updates at `learning_rate`, `warmup_steps`, batch sizes) per source."""
        st, ini = stacks(up), inits(up)
        batch = {t: P["ranking"]["batch_size"] if t == "retrieval" else P["batch_size"] for t in data}
        studies = {src: Study(st[src], None, data, init=ini[src], steps=P["steps"], learning_rate=P["learning_rate"],
                              warmup_fraction=P["warmup_steps"] / P["steps"], weight_decay=P["weight_decay"],
                              batch_size=batch, eval_rows=P["eval_batch_size"], pooling_heads=P["pooling_heads"],
                              stack_dropout=P["stack_dropout"]) for src in st}
        return cls(studies, Variant(**P["default"]))

    def variant(self, attention: str | None = None, pooling: str | None = None,
                dropout: float | None = None) -> Variant:
        d = self.default
        return Variant(attention or d.attention, pooling or d.pooling, d.dropout if dropout is None else dropout)

    def finetune(self, task: str, source: str = "small", attention: str | None = None, pooling: str | None = None,
                 dropout: float | None = None, seed: int = 0, keep: bool = False) -> dict[str, float]:
        """`Study.run` of `source` on the default with the given knobs changed."""
        return self.studies[source].run(task, self.variant(attention, pooling, dropout), seed, keep=keep)

    def frame(self) -> Any:
        """Every run of every source (`Study.frame` plus 'source')."""
        import pandas as pd

        return pd.concat([st.frame().assign(source=src) for src, st in self.studies.items() if st.runs],
                         ignore_index=True)

    def runs(self) -> int:
        return sum(len(st.runs) for st in self.studies.values())

    def utilisation(self, wall_seconds: float, peak_flops: float | None = None) -> dict[str, float]:
        return utilisation(list(self.studies.values()), wall_seconds, peak_flops)


def variants(low_dropout: float, high_dropout: float) -> dict[str, dict[str, Any]]:
    """The seeded variants of the claim task: name -> `Sources.finetune` knobs (the default changes nothing)."""
    return {"default": {}, "causal": {"attention": "causal"}, "attention_pool": {"pooling": "attention"},
            "no_dropout": {"dropout": low_dropout}, "high_dropout": {"dropout": high_dropout},
            "scratch": {"source": "scratch"}, "ul2": {"source": "ul2"}, "prefixlm": {"source": "prefixlm"}}


# claim name (a metric key of the claims registry) -> (A, B): per seed, score(A) - score(B)
PAIRS = {
    "bidirectional_gt_causal": ("default", "causal"),
    "simple_pooling_ge_attention": ("default", "attention_pool"),
    "dropout_effect": ("default", "no_dropout"),
    "high_dropout_effect": ("high_dropout", "no_dropout"),
    "adapted_gt_scratch": ("default", "scratch"),
    "ul2_encoder_gt_decoder_encoder": ("ul2", "default"),
    "prefixlm_encoder_gt_decoder_encoder": ("prefixlm", "default"),
}


def variant_claims(per_seed: Mapping[str, Sequence[float]]) -> dict[str, dict[str, list[float]]]:
    """{claim: {'values': A - B per seed, 'a', 'b'}} for `PAIRS`, plus 'encdec_encoder_gt_decoder_encoder' (the
    mean of the UL2 and PrefixLM encoders minus the decoder's encoder)."""
    def pair(a: Sequence[float], b: Sequence[float]) -> dict[str, list[float]]:
        a, b = [float(x) for x in a], [float(x) for x in b]
        return {"values": [x - y for x, y in zip(a, b, strict=True)], "a": a, "b": b}

    out = {name: pair(per_seed[a], per_seed[b]) for name, (a, b) in PAIRS.items()}
    encdec = [(u + p) / 2 for u, p in zip(per_seed["ul2"], per_seed["prefixlm"], strict=True)]
    out["encdec_encoder_gt_decoder_encoder"] = pair(encdec, per_seed["default"])
    return out


def claims_frame(claims: Mapping[str, Mapping[str, Sequence[float]]]) -> Any:
    """The claims as a table: per-seed differences, mean, sample std (NaN for one seed), n."""
    import pandas as pd

    return pd.DataFrame([{"claim": k, "A − B per seed": np.round(v["values"], 4).tolist(),
                          "mean": float(np.mean(v["values"])),
                          "std": float(np.std(v["values"], ddof=1)) if len(v["values"]) > 1 else float("nan"),
                          "n": len(v["values"])} for k, v in claims.items()])


def score_tree(frame: Any) -> dict[str, Any]:
    """task -> attention -> pooling -> 'd<dropout>' -> score, from a runs frame."""
    tree: dict[str, Any] = {}
    for r in frame.itertuples():
        tree.setdefault(r.task, {}).setdefault(r.attention, {}).setdefault(r.pooling, {})[f"d{r.dropout:g}"] = r.score
    return tree


def task_metrics(main: Any, metric_cols: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """task -> model ('<source>' or '<source>_causal') -> mean of each metric every run has, and 'per_seed'."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (task, model), g in main.groupby(["task", "model"]):
        keys = [k for k in metric_cols if k in g and g[k].notna().all()]
        out.setdefault(task, {})[model.replace(" (causal)", "_causal")] = {
            **{k: float(g[k].mean()) for k in keys}, "per_seed": [float(x) for x in g["score"]]}
    return out


def task_sizes(P: Mapping[str, Any], task: str) -> dict[str, Any]:
    """`encoder_study.task_data` keywords of a task under the 05 preset (ranking: its own subset sizes)."""
    s = P["ranking"] if task == "retrieval" else P
    return {"n_train": s["n_train"], "n_test": s["n_test"], "max_len": P["max_len"][task]}


def tfidf_floor(task: str, mode: str = "cached") -> dict[str, Any]:
    """The task's TF-IDF + logistic regression floor: the figures `make data` stored in its info.json
    ('cached', when present), else fitted now (`baselines.tfidf_baseline`)."""
    from workbench import results
    from workbench.data.baselines import tfidf_baseline
    from workbench.data.tasks import tasks_dir

    info = tasks_dir() / task / "info.json"
    cached = results.read_json(info).get("baseline") if info.is_file() else None
    return cached if (mode == "cached" and cached) else tfidf_baseline(task)
