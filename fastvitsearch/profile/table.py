"""Readable text tables of profile records (for terminals; JSON is the machine format)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from fastvitsearch.profile.count import EncoderCounts


def _millions(n: int) -> str:
    return f"{n / 1e6:,.2f} M"


def _giga(n: int) -> str:
    return f"{n / 1e9:,.2f} G"


def counts_table(counts: Sequence[EncoderCounts]) -> str:
    """One column per (encoder, resolution); rows say what was counted and in which unit."""
    columns = {}
    for c in counts:
        column = {
            "visual tokens": f"{c.visual_tokens:,}",
            "output stride": str(c.output_stride),
            "feature width": str(c.feature_width),
            "params (train form)": _millions(c.params),
            "params (reparameterized)": _millions(c.params_reparameterized),
            "MACs total": _giga(c.macs),
        }
        column.update({f"MACs {op}": _giga(v) for op, v in c.macs_by_op.items()})
        column["spec hash"] = c.spec_hash
        columns[f"{c.encoder} @ {c.resolution}px"] = column
    table = pd.DataFrame(columns).fillna("-").to_string()
    uncounted = sorted({op for c in counts for op in c.uncounted_ops})
    notes = [
        f"source: {counts[0].source}" if counts else "",
        f"unit: {counts[0].unit}" if counts else "",
        f"not counted (no multiply-adds by convention): {', '.join(uncounted)}",
    ]
    return "\n".join([table, *notes])
