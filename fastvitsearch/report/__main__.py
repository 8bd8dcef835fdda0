"""``python -m fastvitsearch.report <sweep folder> [--out <report folder>]``."""

from __future__ import annotations

import argparse
import sys

from fastvitsearch.report.build import build_report
from fastvitsearch.report.compare import build_comparison
from fastvitsearch.results import TableError


def main() -> None:
    parser = argparse.ArgumentParser(description="Write index.html and PNG figures from a sweep's results table.")
    parser.add_argument(
        "sweep_dirs", nargs="+", help="a sweep folder (sweeps/res_vs_llm/res_vs_llm), or several to compare"
    )
    parser.add_argument(
        "--out", help="report folder (default: reports/<experiment>/<study>, or reports/<experiment>/comparison)"
    )
    args = parser.parse_args()
    try:
        if len(args.sweep_dirs) > 1:
            print(f"comparison: {build_comparison(args.sweep_dirs, args.out)}")
            return
        report = build_report(args.sweep_dirs[0], args.out)
    except (FileNotFoundError, TableError) as err:
        sys.exit(f"error: {err}")
    except OSError as err:  # e.g. a report folder that cannot be written
        sys.exit(f"error: --out: {err}")
    print(f"report: {report.html}")
    for path in report.pngs:
        print(f"figure: {path}")


if __name__ == "__main__":
    main()
