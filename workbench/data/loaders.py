"""One loader for hub names and local files, returning our task schemas.

``load_dataset_any("glue/sst2")`` maps a hub dataset to the same columns as our tasks (``text`` + ``label``,
``text_a``/``text_b`` + ``label``, ``query``/``candidates``/``label``, LM ``text``). Local paths (``.jsonl``,
``.json``, ``.csv``, ``.txt`` or a ``save_to_disk`` directory) load fully offline; ``schema=`` (or
auto-detection from the columns) applies a hub normaliser to local files written in that hub schema, and
``data_files=`` does the same for a hub name, which is how the hub path is tested without a network.
Our own prepared task names (``wic``, ``genre`` ...) load from the cache.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from workbench.data.files import DataError, read_jsonl

# hub name -> (hub path, config, schema)
HUB: dict[str, tuple[str, str | None, str]] = {
    "c4": ("allenai/c4", "en", "text"),
    "wikitext": ("Salesforce/wikitext", "wikitext-103-raw-v1", "text"),
    "glue/sst2": ("nyu-mll/glue", "sst2", "sst2"),
    "glue/cola": ("nyu-mll/glue", "cola", "sst2"),
    "glue/stsb": ("nyu-mll/glue", "stsb", "pair"),
    "glue/mrpc": ("nyu-mll/glue", "mrpc", "pair"),
    "glue/rte": ("nyu-mll/glue", "rte", "pair"),
    "glue/wnli": ("nyu-mll/glue", "wnli", "pair"),
    "glue/qqp": ("nyu-mll/glue", "qqp", "qqp"),
    "glue/qnli": ("nyu-mll/glue", "qnli", "qnli"),
    "glue/mnli": ("nyu-mll/glue", "mnli", "nli"),
    "super_glue/boolq": ("aps/super_glue", "boolq", "boolq"),
    "super_glue/cb": ("aps/super_glue", "cb", "nli"),
    "super_glue/rte": ("aps/super_glue", "rte", "nli"),
    "super_glue/wic": ("aps/super_glue", "wic", "wic"),
    "imdb": ("stanfordnlp/imdb", None, "text_label"),
    "ag_news": ("fancyzhu/ag_news", None, "text_label"),
    "ms_marco": ("microsoft/ms_marco", "v2.1", "ms_marco"),
}
ALIASES = {
    "sst2": "glue/sst2",
    "boolq": "super_glue/boolq",
    "allenai/c4": "c4",
    "microsoft/ms_marco": "ms_marco",
    "glue/sst-2": "glue/sst2",
    "super_glue/wic": "super_glue/wic",
}


def _rename(mapping: dict[str, str]) -> Callable[[dict], dict]:
    def f(ex: dict) -> dict:
        return {new: ex[old] for old, new in mapping.items()}

    return f


def _ms_marco(ex: dict) -> dict:
    p = ex["passages"]
    sel = list(p["is_selected"])
    return {
        "query": ex["query"],
        "candidates": list(p["passage_text"]),
        "label": sel.index(1) if 1 in sel else -1,
        "query_id": ex.get("query_id", -1),
    }


def _wic(ex: dict) -> dict:
    return {
        "word": ex["word"],
        "text_a": ex["sentence1"],
        "text_b": ex["sentence2"],
        "start_a": ex["start1"],
        "end_a": ex["end1"],
        "start_b": ex["start2"],
        "end_b": ex["end2"],
        "label": ex["label"],
    }


NORMALISERS: dict[str, tuple[set[str], Callable[[dict], dict]]] = {
    # schema: (columns that identify it, example -> our example)
    "ms_marco": ({"query", "passages"}, _ms_marco),
    "wic": ({"word", "sentence1", "sentence2", "start1"}, _wic),
    "boolq": (
        {"question", "passage", "label"},
        _rename({"question": "text_a", "passage": "text_b", "label": "label"}),
    ),
    "qqp": (
        {"question1", "question2", "label"},
        _rename({"question1": "text_a", "question2": "text_b", "label": "label"}),
    ),
    "qnli": (
        {"question", "sentence", "label"},
        _rename({"question": "text_a", "sentence": "text_b", "label": "label"}),
    ),
    "nli": (
        {"premise", "hypothesis", "label"},
        _rename({"premise": "text_a", "hypothesis": "text_b", "label": "label"}),
    ),
    "pair": (
        {"sentence1", "sentence2", "label"},
        _rename({"sentence1": "text_a", "sentence2": "text_b", "label": "label"}),
    ),
    "sst2": ({"sentence", "label"}, _rename({"sentence": "text", "label": "label"})),
    "text_label": ({"text", "label"}, _rename({"text": "text", "label": "label"})),
    "text": ({"text"}, _rename({"text": "text"})),
    "ours": (set(), lambda ex: ex),
}


def detect_schema(columns: list[str]) -> str:
    """The most specific known schema whose identifying columns are all present."""
    cols = set(columns)
    if {"inputs", "targets"} <= cols or {"query", "candidates"} <= cols or {"text_a", "text_b"} <= cols:
        return "ours"
    for name, (need, _) in NORMALISERS.items():
        if need and need <= cols:
            return name
    return "ours"


def normalise(ds, schema: str | None = None):
    """Apply a schema normaliser to a Dataset or DatasetDict (auto-detected when ``schema`` is None)."""
    import datasets

    if isinstance(ds, datasets.DatasetDict):
        return datasets.DatasetDict({k: normalise(v, schema) for k, v in ds.items()})
    schema = schema or detect_schema(ds.column_names)
    if schema not in NORMALISERS:
        raise KeyError(f"unknown schema {schema!r}; known: {', '.join(NORMALISERS)}")
    if schema == "ours":
        return ds
    out = ds.map(NORMALISERS[schema][1], remove_columns=ds.column_names)
    if schema == "ms_marco":
        out = out.filter(lambda ex: ex["label"] >= 0)
    return out


def _local_format(path: Path) -> str:
    suffix = path.suffix.lower()
    return {
        ".jsonl": "json",
        ".json": "json",
        ".csv": "csv",
        ".tsv": "csv",
        ".txt": "text",
        ".parquet": "parquet",
    }.get(suffix, "")


def _blank(path: Path) -> bool:
    """True for a file without a single non-whitespace byte (reads only up to the first one)."""
    with open(path, "rb") as f:
        while chunk := f.read(1 << 16):
            if chunk.strip():
                return False
    return True


def _jsonl_like(path: Path) -> bool:
    """JSON Lines (one object per line), as opposed to one JSON document: `.jsonl`, or `.json` starting with '{'."""
    if path.suffix.lower() == ".jsonl":
        return True
    with open(path, "rb") as f:
        return f.read(4096).lstrip()[:1] == b"{"


def load_local_files(fmt: str, data_files: Mapping[str, str | os.PathLike], cache_dir: str | None = None,
                     **kwargs: Any):
    """`datasets.load_dataset(fmt, data_files=...)` over local files, with errors that name the file.

    An empty file, a malformed JSON line or a line that is not an object raises `DataError` naming `file:line`
    (the datasets library itself only says "An error occurred while generating the dataset").
    """
    import datasets

    files = {k: str(v) for k, v in data_files.items()}
    for split, f in files.items():
        if not Path(f).is_file():
            raise DataError(f"{f}: no such file (split {split!r})")
        if _blank(Path(f)):
            raise DataError(f"{f}: empty file, no rows (split {split!r})")
    try:
        return datasets.load_dataset(fmt, data_files=files, cache_dir=cache_dir, **kwargs)
    except Exception as e:  # noqa: BLE001 - translated into a DataError naming the file
        if fmt == "json":
            for f in files.values():
                if _jsonl_like(Path(f)):
                    for _ in read_jsonl(f):  # raises DataError(file:line) at the first bad line
                        pass
        cause = e.__cause__ or e.__context__ or e
        where = ", ".join(dict.fromkeys(files.values()))
        raise DataError(f"{where}: cannot load as {fmt}: {type(cause).__name__}: {cause}") from e


def _row_line(path: str, row: int) -> str:
    """' (line N)' of the row-th record of a JSON Lines file (blank lines are not rows), else ''."""
    p = Path(path)
    if not (p.is_file() and _jsonl_like(p)):
        return ""
    with open(p, "rb") as f:
        n = -1
        for lineno, raw in enumerate(f, 1):
            n += bool(raw.strip())
            if n == row:
                return f" (line {lineno})"
    return ""


def check_labels(ds, files: Mapping[str, str] | None = None, where: str = "dataset"):
    """Raise `DataError` when a row of a split with a `label` column has none (a row that omitted it)."""
    import datasets

    splits = ds.items() if isinstance(ds, datasets.DatasetDict) else [(None, ds)]
    for split, d in splits:
        if "label" not in d.column_names:
            continue
        row = next((i for i, v in enumerate(d["label"]) if v is None), None)
        if row is not None:
            src = (files or {}).get(split) if split is not None else next(iter((files or {}).values()), None)
            loc = f"{src}: row {row + 1}{_row_line(src, row)}" if src else f"{where} split {split!r} row {row + 1}"
            raise DataError(f"{loc}: no label (every row of a labelled dataset needs one); add it or remove the row")
    return ds


def load_dataset_any(
    name_or_path: str | os.PathLike,
    split: str | None = None,
    schema: str | None = None,
    data_files=None,
    cache=None,
    **kwargs,
):
    """Load a hub name, one of our task names, or a local path, normalised to our schemas.

    - local file / directory: offline; ``schema`` or auto-detection picks the normaliser;
    - ``data_files=`` with a hub name: read those local files as that hub dataset's schema (offline);
    - our task names (``TASKS``): the prepared cache;
    - otherwise ``datasets.load_dataset(hub_path, config)`` (needs a network or a warm HF cache).
    """
    import datasets

    from workbench.data.tasks import TASKS, load_task

    name = str(name_or_path)
    path = Path(name).expanduser()
    hf_cache = kwargs.pop("cache_dir", None)
    if path.exists():
        if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists()):
            ds = check_labels(normalise(datasets.load_from_disk(str(path)), schema), where=str(path))
        else:
            files = sorted(path.glob("*.*")) if path.is_dir() else [path]
            fmt = _local_format(files[0]) if files else ""
            if not fmt:
                raise ValueError(f"{path}: cannot tell the format (use .jsonl/.json/.csv/.txt or save_to_disk)")
            if path.is_dir():
                by_split = {f.stem: str(f) for f in files if _local_format(f) == fmt}
            else:
                by_split = {"train": str(path)}
            extra = {"delimiter": "\t"} if files[0].suffix == ".tsv" else {}
            ds = load_local_files(fmt, by_split, hf_cache, **extra, **kwargs)
            ds = check_labels(normalise(ds, schema), by_split)
    elif name in TASKS:
        ds = load_task(name, cache)
    else:
        key = ALIASES.get(name, name)
        if key not in HUB:
            raise KeyError(
                f"{name!r} is neither a local path, one of our tasks ({', '.join(TASKS)}) nor a known "
                f"hub name ({', '.join(HUB)})"
            )
        hub_path, config, hub_schema = HUB[key]
        if data_files is not None:
            files = data_files if isinstance(data_files, dict) else {"train": data_files}
            fmt = _local_format(Path(str(next(iter(files.values())))))
            files = {k: str(v) for k, v in files.items()}
            ds = check_labels(normalise(load_local_files(fmt, files, hf_cache), schema or hub_schema), files)
        else:
            ds = datasets.load_dataset(hub_path, config, cache_dir=hf_cache, **kwargs)
            ds = check_labels(normalise(ds, schema or hub_schema), where=name)
    if split is not None:
        ds = ds[split]
    return ds
