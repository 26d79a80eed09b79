"""Claims table and report rendering for the final report notebook.

A `Claim` states a paper result as a quantity and a direction: e.g. "2B-2B beats 2B on PT" becomes the
per-seed difference `score(2B-2B) - score(2B)` with direction '>' against threshold 0. Its verdict is computed
from our numbers, never typed, by `verdict`:

* n >= 2 values (seeds / repeats) with finite sample std: a two-sided one-sample t-test of the mean against
  `threshold` at level `alpha` (default 0.05), i.e. the (1 - alpha) t confidence interval
  mean +- t_{1-alpha/2, n-1} * std / sqrt(n).
  - direction '>' : 'holds' if the interval lies above the threshold, 'contradicted' if it lies below,
    'inconclusive' if it contains it. '<' mirrored.
  - direction '~' (e.g. "9B-2B has 2B-like latency"): 'holds' if the interval lies within
    threshold +- margin, 'contradicted' if it lies entirely outside it, 'inconclusive' otherwise.
* n < 2 (or a zero std with n >= 2, treated as an exact value): without spread no test is possible, so a
  single value gives 'inconclusive'; a zero-spread set of repeats is judged by its mean alone.
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

HOLDS, CONTRADICTED, INCONCLUSIVE = "holds", "contradicted", "inconclusive"
_DIRECTIONS = {">": ">", "greater": ">", "<": "<", "less": "<", "~": "~", "similar": "~"}


# ----------------------------------------------------------------------------------------- verdicts
def _t_crit(alpha: float, dof: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(1.0 - alpha / 2.0, dof))


def verdict(ours_mean: float, ours_std: float, n: int, threshold: float = 0.0, direction: str = ">",
            alpha: float = 0.05, margin: float = 0.0) -> str:
    """'holds' | 'contradicted' | 'inconclusive' from mean, sample std and count (rule: module docstring)."""
    d = _DIRECTIONS.get(direction)
    if d is None:
        raise ValueError(f"direction must be one of {sorted(_DIRECTIONS)}, got {direction!r}")
    if n < 1 or not math.isfinite(ours_mean):
        return INCONCLUSIVE
    if n < 2 or not math.isfinite(ours_std):
        return INCONCLUSIVE
    half = _t_crit(alpha, n - 1) * ours_std / math.sqrt(n)
    lo, hi = ours_mean - half, ours_mean + half
    if d == ">":
        return HOLDS if lo > threshold else CONTRADICTED if hi < threshold else INCONCLUSIVE
    if d == "<":
        return HOLDS if hi < threshold else CONTRADICTED if lo > threshold else INCONCLUSIVE
    if threshold - margin <= lo and hi <= threshold + margin:
        return HOLDS
    if hi < threshold - margin or lo > threshold + margin:
        return CONTRADICTED
    return INCONCLUSIVE


# ----------------------------------------------------------------------------------------- claims
Measure = Callable[[Mapping[str, Any]], Any] | str


@dataclasses.dataclass(frozen=True)
class Claim:
    """A paper claim. `measure` maps metrics_by_experiment to our values (one per seed), or is a key
    'experiment/metric/sub' into them. The claim is: measure `direction` `threshold` ('>', '<', or '~' within
    `margin`). `paper_value` is the paper's number for the same quantity (shown, not tested)."""

    id: str
    text: str
    paper_value: float | str | None
    measure: Measure
    direction: str = ">"
    threshold: float = 0.0
    margin: float = 0.0
    unit: str = ""

    def __post_init__(self) -> None:
        if self.direction not in _DIRECTIONS:
            raise ValueError(f"claim {self.id}: direction must be one of {sorted(_DIRECTIONS)}")


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


def evaluate(claim: Claim, metrics_by_experiment: Mapping[str, Any], alpha: float = 0.05) -> dict[str, Any]:
    """One claims-table row: our values, mean, std, n, the verdict and a note."""
    note = ""
    try:
        raw = (lookup(metrics_by_experiment, claim.measure) if isinstance(claim.measure, str)
               else claim.measure(metrics_by_experiment))
        vals = [v for v in _values(raw)]
    except (KeyError, IndexError, TypeError, ValueError) as e:
        vals, note = [], f"no data: {e}"
    if any(not math.isfinite(v) for v in vals):
        note, vals = "non-finite measurement", []
    mean, std = mean_std(vals)
    if len(vals) == 1:
        note = note or "single value: no spread to test"
    v = verdict(mean, std, len(vals), claim.threshold, claim.direction, alpha, claim.margin)
    sym = {">": ">", "<": "<", "~": "≈"}[_DIRECTIONS[claim.direction]]
    test = f"{sym} {claim.threshold:g}" + (f" ± {claim.margin:g}" if _DIRECTIONS[claim.direction] == "~" else "")
    return {"id": claim.id, "claim": claim.text, "paper": claim.paper_value, "test": test,
            "ours": format_mean_std(mean, std, claim.unit), "mean": mean, "std": std, "n": len(vals),
            "verdict": v, "note": note}


def format_mean_std(mean: float, std: float, unit: str = "") -> str:
    if not math.isfinite(mean):
        return "—"
    s = f"{mean:.3g}" if not math.isfinite(std) else f"{mean:.3g} ± {std:.2g}"
    return f"{s} {unit}".strip()


def claims_table(claims: Sequence[Claim], metrics_by_experiment: Mapping[str, Any], alpha: float = 0.05):
    """DataFrame with one row per claim: id, claim, paper, test, ours (mean ± std), mean, std, n, verdict, note."""
    import pandas as pd

    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate claim ids: {sorted({i for i in ids if ids.count(i) > 1})}")
    return pd.DataFrame([evaluate(c, metrics_by_experiment, alpha) for c in claims])


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
td.holds{background:#dff3df} td.contradicted{background:#f8dada} td.inconclusive{background:#f5f0d8}"""


def render_html(sections: Sequence[Section], path: str | os.PathLike, title: str = "workbench report",
                provenance: Mapping[str, Any] | None = None) -> Path:
    """One self-contained HTML page: tables as HTML, figures as base64 PNG / inline SVG, and a final
    provenance section (`provenance`, default: `results.provenance` of the rendering run)."""
    prov = dict(provenance) if provenance is not None else results.provenance({}, None, None)
    sections = [*sections, Section("Provenance", [prov])]
    toc = "".join(f'<li><a href="#{_slug(s.title)}">{html.escape(s.title)}</a></li>' for s in sections)
    body = "".join(f'<h2 id="{_slug(s.title)}">{html.escape(s.title)}</h2>\n'
                   + "".join(_html_block(b) for b in s.blocks) for s in sections)
    for v in (HOLDS, CONTRADICTED, INCONCLUSIVE):  # colour verdict cells
        body = body.replace(f"<td>{v}</td>", f'<td class="{v}">{v}</td>')
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
