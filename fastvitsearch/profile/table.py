"""Readable text tables of profile records (for terminals; JSON is the machine format)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd


def _ms(part: dict[str, Any] | None) -> str:
    if not part:
        return "-"
    value = part.get("median", part.get("value"))
    text = f"{value:,.2f} ms"
    if part.get("error") is not None:
        text += f" ±{part['error'] * 100:.0f}%"
    if part.get("noisy"):
        text += " (noisy)"
    return text


def records_table(records: Sequence[dict[str, Any]]) -> str:
    """One column per (encoder, resolution); rows say what was counted or timed, and sources below."""
    columns = {}
    sources: dict[str, set[str]] = {}
    for r in records:
        column = {
            "visual tokens": f"{r['visual_tokens']:,}",
            "output stride": str(r["output_stride"]),
            "feature width": str(r["feature_width"]),
            "params (train form)": f"{r['params'] / 1e6:,.2f} M",
            "params (reparameterized)": f"{r['params_reparameterized'] / 1e6:,.2f} M",
            "MACs total": f"{r['macs'] / 1e9:,.2f} G",
        }
        column.update({f"MACs {op}": f"{v / 1e9:,.2f} G" for op, v in r["macs_by_op"].items()})
        sources.setdefault("counts", set()).add(r["source"])
        for key, label in (
            ("latency_ms", "encoder latency"),
            ("projector_ms", "projector"),
            ("prefill_ms", "LLM prefill"),
            ("ttft_ms", "TTFT"),
        ):
            if key in r:
                column[label] = _ms(r[key])
                sources.setdefault(label, set()).add(r[key]["source"])
        column["spec hash"] = r["spec_hash"]
        title = f"{r['encoder']} @ {r['resolution']}px" + (f" + {r['llm']}" if r.get("llm") else "")
        columns[title] = column
    table = pd.DataFrame(columns).fillna("-").to_string()
    notes = [f"{label}: {'; '.join(sorted(s))}" for label, s in sources.items()]
    if records:
        notes.append(f"unit: {records[0]['unit']}")
        env = next(
            (r["latency_ms"]["environment"] for r in records if (r.get("latency_ms") or {}).get("environment")), None
        )
        if env:
            notes.append("measured with: " + ", ".join(f"{k}={v}" for k, v in env.items()))
        uncounted = sorted({op for r in records for op in r["uncounted_ops"]})
        notes.append(f"not counted (no multiply-adds by convention): {', '.join(uncounted)}")
    return "\n".join([table, *notes])
