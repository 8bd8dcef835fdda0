"""Non-dominated sets and hypervolume: pure functions on arrays and tables (no plotting).

Directions are ``"minimize"`` / ``"maximize"`` per objective; internally everything is turned
into minimisation. Rows with a missing (NaN) objective are never on the front.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def _as_minimization(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(directions):
        raise ValueError(f"expected an (n, {len(directions)}) array of objective values, got {values.shape}")
    signs = []
    for d in directions:
        if d not in ("minimize", "maximize"):
            raise ValueError(f"direction must be 'minimize' or 'maximize', got {d!r}")
        signs.append(1.0 if d == "minimize" else -1.0)
    return values * np.asarray(signs)


def pareto_mask(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Boolean mask of the non-dominated rows. Duplicates of a front point are all on the front
    (neither dominates the other); a point equal in one objective and worse in another is not."""
    v = _as_minimization(values, directions)
    valid = ~np.isnan(v).any(axis=1)
    mask = np.zeros(len(v), dtype=bool)
    candidates = v[valid]
    for i, row in zip(np.flatnonzero(valid), candidates, strict=True):
        dominated = np.any(np.all(candidates <= row, axis=1) & np.any(candidates < row, axis=1))
        mask[i] = not dominated
    return mask


def dominates(better: Sequence[float], worse: Sequence[float], directions: Sequence[str]) -> bool:
    """``better`` is at least as good in every objective and strictly better in one."""
    a, b = _as_minimization(np.asarray([better, worse], dtype=float), directions)
    return bool(np.all(a <= b) and np.any(a < b))


def pareto_front(table: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    """The rows of ``table`` on the front of ``objectives`` ({column: direction}), sorted by the first."""
    columns = list(objectives)
    mask = pareto_mask(table[columns].to_numpy(dtype=float), list(objectives.values()))
    first, direction = columns[0], objectives[columns[0]]
    return table[mask].sort_values(first, ascending=direction == "minimize")


def hypervolume(values: np.ndarray, directions: Sequence[str], reference: Sequence[float]) -> float:
    """Volume dominated by ``values`` and bounded by ``reference`` (a point worse than all).

    Exact, by recursive slicing along the first objective (fine for the few dozen front points
    a sweep produces). Points that do not strictly beat the reference in every objective add 0.
    """
    v = _as_minimization(values, directions)
    ref = _as_minimization(np.asarray(reference, dtype=float)[None, :], directions)[0]
    v = v[~np.isnan(v).any(axis=1)]
    v = v[np.all(v < ref, axis=1)]
    if len(v) == 0:
        return 0.0
    return float(_hv(v[pareto_mask(v, ["minimize"] * v.shape[1])], ref))


def _hv(points: np.ndarray, ref: np.ndarray) -> float:
    if points.shape[1] == 1:
        return float(ref[0] - points[:, 0].min())
    order = np.argsort(points[:, 0])
    points = points[order]
    volume = 0.0
    for i, point in enumerate(points):
        upper = points[i + 1, 0] if i + 1 < len(points) else ref[0]
        width = upper - point[0]
        if width <= 0:
            continue
        # everything up to and including i dominates this slab in the remaining objectives
        volume += width * _hv(points[: i + 1, 1:], ref[1:])
    return volume
