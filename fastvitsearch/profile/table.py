"""Readable text tables of record rows (for terminals; JSON is the machine format)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

#: rows in the order they are shown: a prediction beside the measured encoder latency it predicts
_LABELS = {
    "encoder_ms": "encoder latency",
    "encoder_ms_predicted": "encoder latency, predicted",
    "projector_ms": "projector",
    "prefill_ms": "LLM prefill",
    "ttft_ms": "TTFT",
}


def _ms(row: dict[str, Any], part: str) -> str:
    text = f"{row[part]:,.2f} ms"
    if row.get(f"{part}_error") is not None:
        text += f" ±{row[f'{part}_error'] * 100:.0f}%"
    if row.get(f"{part}_noisy"):
        text += " (noisy)"
    return text


def _macs_unit(rows: Sequence[dict[str, Any]]) -> tuple[float, str]:
    """One unit for every MACs cell (so columns compare): G, or M/k when the largest count is below a
    billion (a tiny test encoder at 64 px would read 0.00 G)."""
    largest = max((r["macs"] for r in rows), default=0)
    return next(((scale, unit) for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")) if largest >= scale), (1, ""))


def records_table(rows: Sequence[dict[str, Any]]) -> str:
    """One column per (encoder, resolution); rows say what was counted or timed, and sources below."""
    columns = {}
    scale, unit = _macs_unit(rows)
    sources: dict[str, set[str]] = {}
    for r in rows:
        column = {
            "visual tokens": f"{r['visual_tokens']:,}",
            "output stride": str(r["output_stride"]),
            "feature width": str(r["feature_width"]),
            "params (train form)": f"{r['params'] / 1e6:,.2f} M",
            "params (reparameterized)": f"{r['params_reparameterized'] / 1e6:,.2f} M",
            "MACs total": f"{r['macs'] / scale:,.2f} {unit}".rstrip(),
        }
        column.update(
            {  # None in records counted before a class with no MACs was reported as 0
                f"MACs {op}": "-" if r.get(f"macs_{op}") is None else f"{r[f'macs_{op}'] / scale:,.2f} {unit}".rstrip()
                for op in ("conv", "linear", "attention")
            }
        )
        sources.setdefault("counts", set()).add(r["counts_source"])
        for part in _LABELS:
            if r.get(part) is not None:
                column[_LABELS[part]] = _ms(r, part)
                sources.setdefault(_LABELS[part], set()).add(r[f"{part}_source"])
        if r.get("accuracy") is not None:
            column[f"{r['accuracy_metric']} accuracy"] = f"{r['accuracy']:.1f}"
            sources.setdefault("accuracy", set()).add(r["accuracy_source"])
        elif r.get("refusals"):
            column["accuracy"] = "none (see below)"
            sources.setdefault("no accuracy", set()).update(r["refusals"])
        column["spec hash"] = r["spec_hash"]
        title = f"{r['encoder']} @ {r['resolution']}px" + (f" + {r['llm']}" if r.get("llm") else "")
        columns[title] = column
    table = pd.DataFrame(columns).fillna("-").to_string()
    notes = [f"{label}: {'; '.join(sorted(s))}" for label, s in sources.items()]
    if rows:
        notes.append("unit: MACs (FLOPs = 2 x MACs)")
        timed = next((r for r in rows if r.get("encoder_ms_source", "") and r.get("threads")), None)
        if timed:
            versions = ", ".join(
                f"{k.removeprefix('version_')}={v}" for k, v in timed.items() if k.startswith("version_")
            )
            notes.append(
                f"measured with: device={timed['device_fingerprint']}, threads={timed['threads']}, "
                f"runtime={timed['runtime']}, other processes' CPU={timed.get('encoder_ms_other_cpu')} cores, "
                + versions
            )
            when = sorted({r["encoder_ms_measured_at"] for r in rows if r.get("encoder_ms_measured_at")})
            if when:
                reused = sum(bool(r.get("encoder_ms_cached")) for r in rows)
                notes.append(
                    f"encoder timed at: {when[0]}"
                    + (f" to {when[-1]}" if len(when) > 1 else "")
                    + (
                        f" ({reused} of {len(rows)} from the measurement cache; device.force=true times again)"
                        if reused
                        else ""
                    )
                )
        uncounted = sorted({op for r in rows for op in r["uncounted_ops"]})
        notes.append(f"not counted (no multiply-adds by convention): {', '.join(uncounted)}")
    return "\n".join([table, *notes])
