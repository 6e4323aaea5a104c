"""Fill the README's results tables from bench/results/*.json (the README quotes nothing else).

python bench/report.py          # rewrites the block between the `results:accuracy` markers
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import read  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"


def accuracy_table() -> str:
    data = read("accuracy")
    rows = data.get("results", [])
    if not rows:
        return "_No accuracy results yet: run `python bench/accuracy.py`._"
    out = [
        "| model | dataset | H | MSE | paper MSE | MAE | paper MAE | test windows | epochs |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_ds: dict[str, list[dict]] = {}
    for r in rows:
        out.append(
            f"| {r['model']} | {r['dataset']} | {r['horizon']} | {r['mse']:.3f} | {r['paper']['mse']:.3f} | "
            f"{r['mae']:.3f} | {r['paper']['mae']:.3f} | {r['test_windows']} | {r.get('epochs', '')} |"
        )
        by_ds.setdefault(f"{r['model']} | {r['dataset']}", []).append(r)
    for key, rs in by_ds.items():
        if len(rs) == 4:
            avg = lambda f, rs=rs: sum(f(r) for r in rs) / len(rs)  # noqa: E731
            out.append(
                f"| {key} | avg | **{avg(lambda r: r['mse']):.3f}** | {avg(lambda r: r['paper']['mse']):.3f} | "
                f"**{avg(lambda r: r['mae']):.3f}** | {avg(lambda r: r['paper']['mae']):.3f} | | |"
            )
    out.append("")
    out.append(f"Measured on {data.get('machine')} at commit `{data.get('commit')}` with `{data.get('command')}`.")
    return "\n".join(out)


def main() -> int:
    text = README.read_text()
    block = f"<!-- results:accuracy -->\n{accuracy_table()}\n<!-- /results:accuracy -->"
    new, n = re.subn(r"<!-- results:accuracy -->.*?<!-- /results:accuracy -->", block, text, flags=re.S)
    if n != 1:
        print("README has no results:accuracy markers", file=sys.stderr)
        return 1
    README.write_text(new)
    print(accuracy_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
