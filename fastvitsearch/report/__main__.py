"""``python -m fastvitsearch.report <sweep folder> [--out <report folder>]``."""

from __future__ import annotations

import argparse
import sys

from fastvitsearch.report.build import build_report
from fastvitsearch.results import TableError


def main() -> None:
    parser = argparse.ArgumentParser(description="Write index.html and PNG figures from a sweep's results table.")
    parser.add_argument("sweep_dir", help="a sweep folder, e.g. sweeps/res_vs_llm/res_vs_llm")
    parser.add_argument("--out", help="report folder (default: reports/<experiment>/<study>)")
    args = parser.parse_args()
    try:
        report = build_report(args.sweep_dir, args.out)
    except (FileNotFoundError, TableError) as err:
        sys.exit(f"error: {err}")
    except OSError as err:  # e.g. a report folder that cannot be written
        sys.exit(f"error: --out: {err}")
    print(f"report: {report.html}")
    for path in report.pngs:
        print(f"figure: {path}")


if __name__ == "__main__":
    main()
