"""The dropped-rows table sums to every step's full counts although it keeps a few examples."""

from __future__ import annotations

import pyarrow as pa

from contracts.tables import DROPPED_ROWS
from forge.core.report import dropped_rows
from forge.core.stats import StepStats


def test_dropped_rows_sum_to_the_full_counts_with_a_few_examples():
    st = StepStats("modules", max_examples=3)
    for i in range(7):
        st.drop("no_signature", f"pkg.f{i}: no signature")
    st.drop("import_error", "pkg.broken: ImportError")
    rows = list(dropped_rows("python_module_operations", [st], source_uri=lambda d: d.split(":")[0]))
    pa.Table.from_pylist(rows, schema=DROPPED_ROWS)  # the contract holds
    by_reason: dict[str, int] = {}
    for r in rows:
        by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + r["n"]
    assert by_reason == {"modules:no_signature": 7, "modules:import_error": 1}
    examples = [r for r in rows if r["detail"] is not None]
    assert len(examples) == 4 and all(r["n"] == 1 for r in examples)
    assert examples[0]["source_uri"] == "pkg.f0"
    rest = [r for r in rows if r["detail"] is None]
    assert rest == [{"asset": "python_module_operations", "reason": "modules:no_signature", "detail": None,
                     "source_uri": None, "n": 4}]  # fmt: skip
