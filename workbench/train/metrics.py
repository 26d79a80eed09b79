"""Per-step metrics to `<out_dir>/metrics.jsonl` (source of truth) and `metrics.csv` (rewritten view).

On resume, `MetricsWriter(out_dir, resume_step=c)` keeps only records with `step < c` (update indices are
0-based; a checkpoint at c holds updates 0..c-1) and drops a torn last line, so every step appears once.
"""

from __future__ import annotations

import csv
import json
import math
import os
from typing import Any


def read_jsonl(path: str) -> list[dict]:
    """Records of a metrics.jsonl, skipping a torn (unparseable) trailing line."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return out


def _clean(v: Any) -> Any:
    v = float(v) if hasattr(v, "__float__") and not isinstance(v, (int, str)) else v
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


class MetricsWriter:
    def __init__(self, out_dir: str, resume_step: int = 0):
        os.makedirs(out_dir, exist_ok=True)
        self.jsonl = os.path.join(out_dir, "metrics.jsonl")
        self.csv = os.path.join(out_dir, "metrics.csv")
        self.history = [r for r in read_jsonl(self.jsonl) if r.get("step", -1) < resume_step]
        tmp = self.jsonl + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in self.history)
        os.replace(tmp, self.jsonl)
        self._f = open(self.jsonl, "a")  # noqa: SIM115
        self._fields: list[str] = []
        self._write_csv()

    def _write_csv(self) -> None:
        for r in self.history:
            self._fields += [k for k in r if k not in self._fields]
        with open(self.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self._fields)
            w.writeheader()
            w.writerows(self.history)

    def write(self, record: dict) -> dict:
        record = {k: _clean(v) for k, v in record.items()}
        self._f.write(json.dumps(record) + "\n")
        self._f.flush()
        self.history.append(record)
        if any(k not in self._fields for k in record):
            self._write_csv()
        else:
            with open(self.csv, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=self._fields).writerow(record)
        return record

    def close(self) -> None:
        self._f.close()
