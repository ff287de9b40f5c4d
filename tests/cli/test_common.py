"""The shared CLI helpers: JSON-ready values, tables, the first-N listing on stderr."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from rich.console import Console

from harmony.cli import common


@dataclass(frozen=True)
class _Rec:
    name: str
    when: datetime
    path: Path
    score: float
    arr: np.ndarray
    _hidden: int = 0
    tags: dict = field(default_factory=dict)


def test_plain_makes_records_json_ready():
    rec = _Rec("v1", datetime(2024, 5, 1, 12, tzinfo=timezone.utc), Path("/r/a.pt"), float("nan"),
               np.array([1, 2], np.int64), 7, {1: np.float32(0.5)})
    out = common.plain([rec, (np.int64(3),)])
    assert out == [{"name": "v1", "when": "2024-05-01T12:00:00+00:00", "path": "/r/a.pt", "score": None,
                    "arr": [1, 2], "tags": {"1": 0.5}}, [3]]
    json.dumps(out, allow_nan=False)  # strict JSON: no NaN slipped through


def test_table_justifies_and_wraps_the_named_columns():
    t = common.table("t", ("name", "n", "note"), right=("n",), no_wrap=("name",), caption="c")
    assert [c.header for c in t.columns] == ["name", "n", "note"]
    assert [c.justify for c in t.columns] == ["left", "right", "left"]
    assert [c.no_wrap for c in t.columns] == [True, False, False]
    assert t.title == "t" and t.caption == "c"
    f = common.field_table("rec", [("a", "1"), ("b", "2")])
    assert not f.show_header and f.row_count == 2 and [c.header for c in f.columns] == ["field", "value"]


def test_print_first_lists_at_most_limit_and_counts_the_rest(monkeypatch):
    con = Console(record=True, width=200, force_terminal=False)
    monkeypatch.setattr(common, "err_console", con)
    common.print_first("3 bad", ["a", "b", "c"], limit=2, more=" (see --json)")
    assert con.export_text().splitlines() == ["3 bad:", "  a", "  b", "  ... and 1 more (see --json)"]
    common.print_first("40 failed", ["x"], total=40, limit=20)
    assert con.export_text().splitlines() == ["40 failed:", "  x", "  ... and 20 more"]
