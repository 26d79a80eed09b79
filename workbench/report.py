"""Claims verdicts and report rendering for the final report notebook.

A `Claim` (registry: `workbench.claims`) states a paper result as a per-seed quantity, a direction and a
**margin**, the smallest effect of interest in our units, no larger than the paper's effect translated to our
measure (`Claim.translation` says how). Its verdict is computed from our numbers, never typed, by `verdict`.

The rule. Values are paired per-seed differences (or ratios), d_i = value_i - threshold, i = 1..n. With
n >= 3 (`MIN_SEEDS`) the (1 - alpha) t-interval of their mean is [lo, hi] = mean -+ h,
h = t_{1-alpha/2, n-1} * s / sqrt(n) (s: sample std; alpha = 0.05 by default). h is the **smallest detectable
effect** shown beside the margin m. Verdicts, first match wins:

1. **not measured at this scale**: no data, n < 3, a baseline with one seed copied to every seed, or a reason
   the claim gives from the recorded parameters (e.g. a run capped below matched compute);
2. **equivalent**: -m < lo and hi < m: whatever the difference, it is smaller than the margin (for a '≥' or
   '≈' claim this is what the claim predicts; for '>' / '<' it rules out an effect of interest);
3. **holds**: the interval lies on the claimed side: '>' lo > 0; '<' hi < 0; '≥' (at least as good,
   non-inferiority) lo > -m; '≤' hi < m. A point estimate >= m is not required. ('≈' has no separate 'holds':
   its claim is rule 2.)
4. **contradicted**: the interval lies on the other side: '>' hi < 0; '<' lo > 0; '≥' hi < -m; '≤' lo > m;
   '≈' lo > m or hi < -m;
5. **underpowered**: anything else: the interval is too wide to decide (typically lo < -m and hi > m).

A zero spread over n >= 3 repeats gives h = 0: the mean alone decides.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import html
import io
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from workbench import results

HOLDS, CONTRADICTED, EQUIVALENT = "holds", "contradicted", "equivalent"
UNDERPOWERED, NOT_MEASURED = "underpowered", "not measured at this scale"
VERDICTS = (HOLDS, CONTRADICTED, EQUIVALENT, UNDERPOWERED, NOT_MEASURED)
MIN_SEEDS = 3
_DIRECTIONS = {">": ">", "greater": ">", "<": "<", "less": "<", ">=": "≥", "≥": "≥", "<=": "≤", "≤": "≤",
               "~": "≈", "≈": "≈", "similar": "≈"}
NO_DATA = "no data"


# ----------------------------------------------------------------------------------------- verdicts
def _t_crit(alpha: float, dof: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(1.0 - alpha / 2.0, dof))


def direction_symbol(direction: str) -> str:
    """Canonical symbol ('>', '<', '≥', '≤', '≈') of a direction or its alias."""
    d = _DIRECTIONS.get(direction)
    if d is None:
        raise ValueError(f"direction must be one of {sorted(_DIRECTIONS)}, got {direction!r}")
    return d


def interval(mean: float, std: float, n: int, alpha: float = 0.05) -> tuple[float, float, float]:
    """(lo, hi, half-width) of the (1 - alpha) t-interval of a mean; NaNs when n < 2 or a value is not finite."""
    if n < 2 or not (math.isfinite(mean) and math.isfinite(std)):
        return math.nan, math.nan, math.nan
    half = _t_crit(alpha, n - 1) * std / math.sqrt(n)
    return mean - half, mean + half, half


def judge(lo: float, hi: float, direction: str, margin: float) -> str:
    """Rules 2-5 of the module docstring for an interval [lo, hi] of value - threshold."""
    d, m = direction_symbol(direction), margin
    if -m < lo and hi < m:
        return EQUIVALENT
    side = {">": (lo > 0, hi < 0), "<": (hi < 0, lo > 0), "≥": (lo > -m, hi < -m), "≤": (hi < m, lo > m),
            "≈": (False, lo > m or hi < -m)}[d]
    return HOLDS if side[0] else CONTRADICTED if side[1] else UNDERPOWERED


def verdict(mean: float, std: float, n: int, threshold: float = 0.0, direction: str = ">",
            alpha: float = 0.05, margin: float = 0.0, reason: str = "") -> str:
    """One of `VERDICTS` from the mean, sample std and count of per-seed values (rule: module docstring)."""
    direction_symbol(direction)
    if reason or n < MIN_SEEDS or not (math.isfinite(mean) and math.isfinite(std)):
        return NOT_MEASURED
    lo, hi, _ = interval(mean, std, n, alpha)
    return judge(lo - threshold, hi - threshold, direction, margin)


# ----------------------------------------------------------------------------------------- claims
@dataclasses.dataclass(frozen=True)
class Measured:
    """What a measure may return instead of plain values: the values and, if set, why they do not measure
    the claim at this scale (e.g. a one-seed baseline copied to every seed)."""

    values: Sequence[float]
    reason: str = ""


Measure = Callable[[Mapping[str, Any]], Any] | str
Check = Callable[[Mapping[str, Any]], str | None]


@dataclasses.dataclass(frozen=True)
class Claim:
    """A paper claim, stated before any run. `measure` maps metrics_by_experiment to our values (one per
    seed), or is a key 'experiment/metric/sub' into them. The claim is: measure - `threshold` `direction` 0,
    judged against `margin` (> 0, our units), whose derivation from the paper's effect is `translation`.
    `text` says exactly what is measured; `paper` is the paper's statement (shown, not tested). `check` maps
    {experiment: recorded parameters} to a reason the run cannot measure the claim (or None)."""

    id: str
    text: str
    paper: str
    measure: Measure
    direction: str
    margin: float
    translation: str
    threshold: float = 0.0
    unit: str = ""
    check: Check | None = None

    def __post_init__(self) -> None:
        direction_symbol(self.direction)
        if not (math.isfinite(self.margin) and self.margin > 0):
            raise ValueError(f"claim {self.id}: the margin must be a finite number > 0, got {self.margin!r}")
        if not self.translation.strip():
            raise ValueError(f"claim {self.id}: say how the margin translates the paper's effect")

    @property
    def test(self) -> str:
        """The claim as a formula, e.g. '> 0 (margin 0.015)', '≈ 1 ± 0.35'."""
        d = direction_symbol(self.direction)
        if d == "≈":
            return f"≈ {self.threshold:g} ± {self.margin:g}"
        return f"{d} {self.threshold:g} (margin {self.margin:g})"


def describe(measure: Measure) -> str:
    """How a measure is computed, in words: the key, or the callable's `str` / docstring / name."""
    if isinstance(measure, str):
        return measure
    if type(measure).__str__ is not object.__str__:
        return str(measure)
    doc = (getattr(measure, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else getattr(measure, "__name__", type(measure).__name__)


def lookup(metrics_by_experiment: Mapping[str, Any], key: str) -> Any:
    """Resolve 'experiment/metric/sub/...' in nested dicts (list items by integer index)."""
    node: Any = metrics_by_experiment
    for part in key.split("/"):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list | tuple) and part.lstrip("-").isdigit():
            node = node[int(part)]
        else:
            raise KeyError(f"{key!r}: no {part!r} (have: {sorted(node) if isinstance(node, Mapping) else node})")
    return node


def take(measure: Measure, metrics_by_experiment: Mapping[str, Any]) -> Any:
    """What a measure returns: the value at its key, or the callable's result (possibly `Measured`)."""
    return lookup(metrics_by_experiment, measure) if isinstance(measure, str) else measure(metrics_by_experiment)


def _values(x: Any) -> list[float]:
    if hasattr(x, "tolist"):
        x = x.tolist()
    if isinstance(x, Mapping) and "values" in x:
        x = x["values"]
    if isinstance(x, list | tuple):
        return [float(v) for v in x]
    return [float(x)]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; NaN for a single value)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return mean, std


def _check(claim: Claim, params: Mapping[str, Any] | None) -> str:
    """The claim's own reason not to judge this run ('' if none or its parameters are not there to read)."""
    if claim.check is None or params is None:
        return ""
    try:
        return claim.check(params) or ""
    except (KeyError, IndexError, TypeError, ValueError):
        return ""


def evaluate(claim: Claim, metrics_by_experiment: Mapping[str, Any], alpha: float = 0.05,
             params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One claims-table row: n, mean, interval, smallest detectable effect, verdict and its reason. `params`:
    {experiment: recorded parameters}, read by the claim's `check`. A measure that finds nothing gives n = 0
    and a reason starting with 'no data' (unless the claim's check explains the absence)."""
    reason = ""
    try:
        raw = take(claim.measure, metrics_by_experiment)
        if isinstance(raw, Measured):
            raw, reason = list(raw.values), raw.reason
        vals = _values(raw)
        if any(not math.isfinite(v) for v in vals):
            vals, reason = [], f"{NO_DATA}: non-finite measurement"
    except (KeyError, IndexError, TypeError, ValueError) as e:
        vals, reason = [], f"{NO_DATA}: {e}"
    if own := _check(claim, params):
        reason = own
    elif vals and not reason and len(vals) < MIN_SEEDS:
        reason = f"{len(vals)} seed(s); at least {MIN_SEEDS} needed"
    mean, std = mean_std(vals)
    lo, hi, half = interval(mean, std, len(vals), alpha)
    v = verdict(mean, std, len(vals), claim.threshold, claim.direction, alpha, claim.margin, reason)
    return {"id": claim.id, "claim": claim.text, "paper": claim.paper, "measure": describe(claim.measure),
            "test": claim.test, "margin": claim.margin, "translation": claim.translation, "unit": claim.unit,
            "n": len(vals), "mean": mean, "lo": lo, "hi": hi, "detectable": half, "verdict": v,
            "reason": reason or _why(v, claim, half)}


def _why(v: str, claim: Claim, half: float) -> str:
    """A short reading of a measured verdict."""
    d = direction_symbol(claim.direction)
    if v == EQUIVALENT:
        return ("what the claim predicts" if d in "≥≤≈"
                else "any difference is below the margin: an effect of interest is ruled out")
    if v == UNDERPOWERED:
        if half >= claim.margin:
            return (f"smallest detectable effect {half:.2g} is {half / claim.margin:.1f}× the margin: more seeds or "
                    "test examples needed")
        return "the interval straddles a bound of the margin"
    return ""


def format_mean_std(mean: float, std: float, unit: str = "") -> str:
    if not math.isfinite(mean):
        return "—"
    s = f"{mean:.3g}" if not math.isfinite(std) else f"{mean:.3g} ± {std:.2g}"
    return f"{s} {unit}".strip()


def format_interval(lo: float, hi: float) -> str:
    """'[lo, hi]' with 3 significant digits, '—' without an interval."""
    return f"[{lo:.3g}, {hi:.3g}]" if math.isfinite(lo) and math.isfinite(hi) else "—"


def claims_table(claims: Sequence[Claim], metrics_by_experiment: Mapping[str, Any], alpha: float = 0.05,
                 params: Mapping[str, Any] | None = None):
    """DataFrame with one `evaluate` row per claim (ids must be unique)."""
    import pandas as pd

    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate claim ids: {sorted({i for i in ids if ids.count(i) > 1})}")
    return pd.DataFrame([evaluate(c, metrics_by_experiment, alpha, params) for c in claims])


def verdicts_view(table):
    """The claims table as read: id, claim, test, n, mean, interval '[lo, hi]', detectable, verdict, reason."""
    out = table.assign(interval=[format_interval(lo, hi) for lo, hi in zip(table["lo"], table["hi"], strict=True)])
    return out[["id", "claim", "test", "n", "mean", "interval", "detectable", "verdict", "reason"]]


def missing_data(table) -> list[str]:
    """Ids of the claims-table rows without any data that no claim check explains (renamed or absent keys)."""
    return [r.id for r in table.itertuples() if r.n == 0 and str(r.reason).startswith(NO_DATA)]


TASK_SCORE_COLUMNS = ("experiment", "task", "model", "metric", "seeds", "mean", "lo", "hi", "interval", "chance",
                      "above chance")
TASK_SCORES_TEXT = ("Every task score with its 95% interval: the t-interval over seeds where a cell ran two or more, "
                    "else the bootstrap interval over the test examples of its one run ('interval' says which). "
                    "'chance' is the score of a guess that ignores the input (the training majority class, a "
                    "random ranking, Pearson 0; for the IT analogue the best constant answer on the held-out "
                    "rows); 'above chance' means the interval's lower end is above it.")


def task_scores_table(metrics_by_experiment: Mapping[str, Any]):
    """One row per task score the experiments recorded under 'task_scores' (`uncertainty.tree`: task -> model
    -> metric -> numbers), tagged with the experiment, in `TASK_SCORE_COLUMNS` order. A 'task_scores' that is
    not such a tree (the report's own count of an earlier render) is not read."""
    import pandas as pd

    rows = []
    for exp, m in metrics_by_experiment.items():
        tree = m.get("task_scores") if isinstance(m, Mapping) else None
        for task, models in (tree if isinstance(tree, Mapping) else {}).items():
            for model, metrics in models.items():
                for metric, st in metrics.items():
                    has = "lo" in st and "hi" in st
                    rows.append({"experiment": exp, "task": task, "model": model, "metric": metric,
                                 "seeds": int(st.get("seeds", 0)), "mean": st.get("mean", math.nan),
                                 "lo": st.get("lo", math.nan), "hi": st.get("hi", math.nan),
                                 "interval": ("seeds" if st.get("over_seeds") else "test bootstrap") if has
                                 else "none", "chance": st.get("chance", math.nan),
                                 "above chance": bool(st.get("above_chance", 0))})
    return pd.DataFrame(rows, columns=list(TASK_SCORE_COLUMNS))


# ----------------------------------------------------------------------------------------- rendering
@dataclasses.dataclass(frozen=True)
class Section:
    """A report section: a title and blocks (str paragraphs, DataFrames, matplotlib figures, image paths,
    dicts rendered as key/value tables, or `Raw` HTML/Markdown)."""

    title: str
    blocks: Sequence[Any] = ()


@dataclasses.dataclass(frozen=True)
class Raw:
    html: str = ""
    markdown: str = ""


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-") or "section"


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _is_df(x: Any) -> bool:
    return hasattr(x, "to_html") and hasattr(x, "to_markdown")


def _is_fig(x: Any) -> bool:
    return hasattr(x, "savefig")


def _fig_bytes(fig, fmt: str) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=110, bbox_inches="tight",
                metadata={"Software": None} if fmt == "png" else {"Date": None, "Creator": None})
    return buf.getvalue()


def _img(alt: str, png: bytes) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _read_table(path: str | os.PathLike):
    """A results CSV as a DataFrame for display: an integer column with gaps (which CSV reads back as floats)
    becomes integers again."""
    import pandas as pd

    df = pd.read_csv(path)
    for c in df.columns:
        col = df[c].dropna()
        if (df[c].dtype.kind == "f" and 0 < len(col) < len(df) and (col % 1 == 0).all()
                and col.abs().max() < 2**53):
            df[c] = df[c].astype("Int64")
    return df


def _markdown_table(df) -> str:
    """GitHub Markdown; missing cells as '—', booleans as words."""
    import pandas as pd
    from tabulate import tabulate

    def cell(v: Any) -> Any:
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            return None
        return str(v) if isinstance(v, bool) else v

    rows = [[cell(v) for v in row] for row in df.astype(object).itertuples(index=False)]
    return tabulate(rows, headers=[str(c) for c in df.columns], tablefmt="pipe", floatfmt=".4g", missingval="—")


def _html_block(b: Any) -> str:
    if isinstance(b, Raw):
        return b.html
    if isinstance(b, str):
        return "".join(f"<p>{html.escape(p.strip())}</p>\n" for p in b.split("\n\n") if p.strip())
    if _is_df(b):
        return b.to_html(index=False, border=0, classes="table", na_rep="—", float_format=lambda x: f"{x:.4g}")
    if _is_fig(b):
        return _img("figure", _fig_bytes(b, "png"))
    if isinstance(b, os.PathLike):
        p = Path(b)
        if p.suffix == ".svg":
            svg = p.read_text(encoding="utf-8")
            return f'<div class="svg">{svg[svg.find("<svg"):]}</div>'
        if p.suffix == ".png":
            return _img(p.name, p.read_bytes())
        if p.suffix == ".csv":
            return _html_block(_read_table(p))
        return f"<pre>{html.escape(p.read_text(encoding='utf-8'))}</pre>"
    if isinstance(b, Mapping):
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                       for k, v in _flatten(b).items())
        return f'<table class="table kv">{rows}</table>'
    raise TypeError(f"cannot render a {type(b).__name__} block")


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table.table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
.table th,.table td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
.table th{background:#f3f3f3} img,.svg svg{max-width:100%;height:auto} h2{border-bottom:1px solid #ddd}
td.holds{background:#dff3df} td.contradicted{background:#f8dada} td.equivalent{background:#dde8f8}
td.underpowered{background:#f5f0d8} td.not-measured{background:#eeeeee}"""


def render_html(sections: Sequence[Section], path: str | os.PathLike, title: str = "workbench report",
                provenance: Mapping[str, Any] | None = None) -> Path:
    """One self-contained HTML page: tables as HTML, figures as base64 PNG / inline SVG, and a final
    provenance section (`provenance`, default: `results.provenance` of the rendering run)."""
    prov = dict(provenance) if provenance is not None else results.provenance({}, None, None)
    sections = [*sections, Section("Provenance", [prov])]
    toc = "".join(f'<li><a href="#{_slug(s.title)}">{html.escape(s.title)}</a></li>' for s in sections)
    body = "".join(f'<h2 id="{_slug(s.title)}">{html.escape(s.title)}</h2>\n'
                   + "".join(_html_block(b) for b in s.blocks) for s in sections)
    for v in VERDICTS:  # colour verdict cells
        body = body.replace(f"<td>{v}</td>", f'<td class="{_slug(v).removesuffix("-at-this-scale")}">{v}</td>')
    stamp = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n<h1>{html.escape(title)}</h1>\n<p>Rendered {stamp} UTC.</p>"
            f"<ul>{toc}</ul>\n{body}</body></html>\n")
    return results.write_text(path, page)


def _md_block(b: Any, out_dir: Path, name: str) -> str:
    if isinstance(b, Raw):
        return b.markdown
    if isinstance(b, str):
        return b.strip()
    if _is_df(b):
        return b.to_markdown(index=False, floatfmt=".4g")
    if _is_fig(b):
        rel = Path("figures") / f"{name}.png"
        results.write_bytes(out_dir / rel, _fig_bytes(b, "png"))
        return f"![{name}]({rel.as_posix()})"
    if isinstance(b, os.PathLike):
        p = Path(b)
        rel = os.path.relpath(p.resolve(), out_dir.resolve())
        if p.suffix in (".png", ".svg"):
            return f"![{p.stem}]({Path(rel).as_posix()})"
        if p.suffix == ".csv":
            return _markdown_table(_read_table(p))
        return p.read_text(encoding="utf-8").strip()
    if isinstance(b, Mapping):
        return "\n".join(["| key | value |", "|---|---|"]
                         + [f"| {k} | {str(v).replace('|', '/')} |" for k, v in _flatten(b).items()])
    raise TypeError(f"cannot render a {type(b).__name__} block")


def render_markdown(sections: Sequence[Section], path: str | os.PathLike, title: str = "workbench results",
                    provenance: Mapping[str, Any] | None = None) -> Path:
    """A Markdown page (e.g. `results/README.md`); figure objects are saved as `figures/<name>.png` beside it,
    image paths are linked relative to it."""
    path = Path(path)
    prov = dict(provenance) if provenance is not None else results.provenance({}, None, None)
    parts = [f"# {title}"]
    for s in [*sections, Section("Provenance", [prov])]:
        parts.append(f"## {s.title}")
        parts += [_md_block(b, path.parent, f"{_slug(s.title)}-{i}") for i, b in enumerate(s.blocks)]
    return results.write_text(path, "\n\n".join(p for p in parts if p) + "\n")
