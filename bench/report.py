"""Fill the README's results tables from bench/results/*.json (the README quotes nothing else).

python bench/report.py          # rewrites the block between the `results:accuracy` markers
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS, read  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"


def _num(value: float | None) -> str:
    """Three decimals, or a dash where a figure does not exist (e.g. no published anchor)."""
    return "—" if value is None else f"{value:.3f}"


def _provenance(data: dict) -> str:
    """The line naming where, at which commit and with which command a results file was produced."""
    return f"Measured on {data.get('machine')} at commit `{data.get('commit')}` with `{data.get('command')}`."


def accuracy_table() -> str:
    data = read("accuracy")
    rows = [r for r in data.get("results", []) if "mase" not in r]  # probabilistic rows: zeroshot_table
    if not rows:
        return "_No accuracy results yet: run `python bench/accuracy.py`._"
    out = [
        "| model | protocol | dataset | lookback | H | MSE | anchor MSE | MAE | anchor MAE | test windows | epochs |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    groups: dict[str, list[dict]] = {}
    for r in rows:
        protocol = r.get("protocol", "today")
        out.append(
            f"| {r['model']} | {protocol} | {r['dataset']} | {r['lookback']} | {r['horizon']} | {_num(r['mse'])} | "
            f"{_num(r['paper'].get('mse'))} | {_num(r['mae'])} | {_num(r['paper'].get('mae'))} | "
            f"{r['test_windows']} | {r.get('epochs', '')} |"
        )
        groups.setdefault(f"{r['model']} | {protocol} | {r['dataset']}", []).append(r)
    for key, rs in groups.items():
        if len(rs) == 4 and key.split(" | ")[1] == "today":
            avg = lambda f, rs=rs: sum(f(r) for r in rs) / len(rs)  # noqa: E731
            out.append(
                f"| {key} | | avg | **{avg(lambda r: r['mse']):.3f}** | {avg(lambda r: r['paper']['mse']):.3f} | "
                f"**{avg(lambda r: r['mae']):.3f}** | {avg(lambda r: r['paper']['mae']):.3f} | | |"
            )
    out.append("")
    sources = sorted({(r["model"], r.get("protocol", "today"), r["paper"]["source"]) for r in rows})
    out += [f"- anchor for {m} ({p}): {src}" for m, p, src in sources]
    commands = sorted({(r.get("commit", data.get("commit")), r.get("command", data.get("command"))) for r in rows})
    out.append(f"- measured on {data.get('machine')}; commits and commands:")
    out += [f"  - `{c}`: `{cmd}`" for c, cmd in commands]
    return "\n".join(out)


def zeroshot_table() -> str:
    """Moirai-MoE rows of bench/zeroshot.py: MASE and CRPS normalised by seasonal naive (< 1 beats it);
    the rows of accuracy.json, then those of other training seeds (`--train-seed N --out
    bench/results/zeroshot_seedN.json`)."""
    data = read("accuracy")
    rows = [r for r in data.get("results", []) if "mase" in r]
    for path in sorted(RESULTS.glob("zeroshot_seed*.json")):
        rows += read(path.stem).get("results", [])
    if not rows:
        return "_No zero-shot results yet: run `python bench/zeroshot.py`._"
    out = [
        "| router | seed | kind | dataset | lookback | H | MASE / SN | CRPS / SN | naive-1 MASE / SN | MASE | SN MASE "
        "| MSE | MAE | series | epochs | train min |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    key = lambda r: (r["router"], r.get("seed") or 0, not r["zero_shot"], r["dataset"], r["horizon"])  # noqa: E731
    for r in sorted(rows, key=key):
        kind = "zero-shot" if r["zero_shot"] else "in-domain"
        minutes = "" if r.get("train_seconds") is None else f"{r['train_seconds'] / 60:.0f}"
        seed = "" if r.get("seed") is None else r["seed"]
        out.append(
            f"| {r['router']} | {seed} | {kind} | {r['dataset']} | {r['lookback']} | {r['horizon']} | "
            f"**{_num(r['mase'])}** | "
            f"**{_num(r['crps'])}** | {_num(r.get('naive1_mase'))} | {_num(r['mase_raw'])} | "
            f"{_num(r['naive_mase_raw'])} | {_num(r['mse'])} | {_num(r['mae'])} | {r['test_windows']} | "
            f"{r.get('epochs') or ''} | {minutes} |"
        )
    out.append("")
    commands = sorted({(r.get("commit"), r.get("command"), r.get("num_samples")) for r in rows}, key=str)
    out.append(f"- measured on {data.get('machine')}; commits, commands and sample paths per series:")
    out += [f"  - `{c}`: `{cmd}` ({n} paths)" for c, cmd, n in commands]
    return "\n".join(out)


def walk_probe_table() -> str:
    """bench/walk_probe.py: bundles on fresh random walks, against persistence (naive-1)."""
    data = read("walk_probe")
    rows = data.get("rows", [])
    if not rows:
        return "_No probe results yet: run `python bench/walk_probe.py BUNDLE ...`._"
    out = [
        "| model | router | family | model / naive-1 | model / SN | naive-1 / SN | pull to the mean |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['model']} | {r['router']} | {r['family']} | **{_num(r['model_vs_naive1'])}** | "
            f"{_num(r['model_vs_seasonal_naive'])} | {_num(r['naive1_vs_seasonal_naive'])} | "
            f"{_num(r.get('reversion_slope'))} |"
        )
    out += [
        "",
        f"{data.get('series')} series per family, median of {data.get('num_samples')} sample paths, MASE season "
        f"{data.get('season')}, geometric means over series.",
        _provenance(data),
    ]
    return "\n".join(out)


def decode_table() -> str:
    """bench/moirai_decode.py: 100 sample paths over a 720-step horizon, KV cache vs full recompute."""
    data = read("decode")
    rows = data.get("results", [])
    if not rows:
        return "_No decode results yet: run `python bench/moirai_decode.py`._"
    out = [
        "| preset | device | N variates | context | H | paths | cached s | recompute s | speedup | max rel diff "
        "| agree |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        recompute = f"{r['recompute_s']:.1f}" + (
            f" (extrapolated from {r['recompute_steps_measured']} of {r['patch_steps']} steps)"
            if r.get("recompute_extrapolated")
            else ""
        )
        out.append(
            f"| {r['preset']} | {r['device']} | {r['n_variates']} | {r['context']} | {r['horizon']} | "
            f"{r['num_samples']} | {r['cached_s']:.1f} | {recompute} | **{r['speedup']:.1f}×** | "
            f"{r['rel_diff']:.1e} | {r['agree']} |"
        )
    load = data.get("load_average", {})
    trained = [r for r in rows if r["preset"] == "trained"]
    if trained and "'trained'" not in data.get("note", ""):
        out += [
            "",
            f"Preset `trained`: the weights of the bundle given by `--weights` (context = its lookback, "
            f"{trained[0]['context']}); the other rows use random weights, which saturate the output clamps on "
            "long horizons, where cached and recomputed paths can part chaotically.",
        ]
    out += [
        "",
        f"Load average at start/end: {load.get('start', ['?'])[0]} / {load.get('end', ['?'])[0]}; "
        f"{data.get('threads')} torch threads. {data.get('note', '')}",
        _provenance(data),
    ]
    return "\n".join(out)


def moe_table() -> str:
    """bench/moe.py: the MoE SwiGLU layer, our op vs the reference loop over experts."""
    data = read("moe")
    rows = data.get("results", [])
    if not rows:
        return "_No MoE results yet: run `python bench/moe.py`._"
    out = [
        "| impl | device | dtype | tokens | D | expert width | experts | top-k | pass | ms | loop ms | ratio |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['impl']} | {r['device']} | {r['dtype']} | {r['T']} | {r['D']} | {r['F']} | {r['E']} | {r['k']} | "
            f"{r['pass']} | {r['ms']:.1f} | {r['baseline_ms']:.1f} | {r['ratio']:.2f} |"
        )
    out += [
        "",
        f"{data.get('note', '')}. Load average {data.get('load_average_1m')}.",
        _provenance(data),
    ]
    return "\n".join(out)


def service_table() -> str:
    data = read("service")
    load = data.get("load", [])
    if not load:
        return "_No serving results yet: run `python bench/service.py`._"
    out = [
        "| server | concurrency | req/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(load, key=lambda r: (r["concurrency"], r["server"] != "seer")):
        out.append(
            f"| {r['server']} | {r['concurrency']} | {r['rps']:.0f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['errors']} |"
        )
    ratios = ", ".join(f"{r['rps_ratio']:.1f}× at {r['concurrency']}" for r in data.get("ratios", []))
    out += [
        "",
        f"seer / mlflow throughput: {ratios}. {data.get('setup', {}).get('workers', '')}; "
        f"measured on {data.get('machine')} at commit `{data.get('commit')}` with `{data.get('command')}`.",
    ]
    swap = data.get("swap")
    if swap:
        out.append(
            f"\nHot swap under load (`python bench/swap.py`, {swap.get('clients', '?')} clients): {swap['requests']} "
            f"requests, {swap.get('requests_during', '?')} of them after the alias moved; {swap['errors']} errors; "
            f"p99 {swap['p99_ms_before']:.1f} ms before vs {swap['p99_ms_during']:.1f} ms during; the new version "
            f"answered {swap.get('swap_s', '?')} s after the alias moved."
        )
    return "\n".join(out)


def kernels_table() -> str:
    data = read("kernels")
    rows = data.get("results", [])
    if not rows:
        return "_No kernel results yet: run `python bench/kernels.py`._"
    out = []
    if data.get("note"):
        out += [f"**{data['note']}.**", ""]
    out += [
        "| op | impl | device | dtype | L | D | bias | causal | pass | ms | baseline | baseline ms | ratio |",
        "|---|---|---|---|---:|---:|---|---|---|---:|---|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['op']} | {r['impl']} | {r['device']} | {r['dtype']} | {r['L']} | {r['D']} | {r['bias']} | "
            f"{r['causal']} | {r['pass']} | {r['ms']:.3f} | {r['baseline']} | {r['baseline_ms']:.3f} | "
            f"{r['ratio']:.2f} |"
        )
    out += ["", _provenance(data)]
    return "\n".join(out)


def probsparse_table() -> str:
    data = read("probsparse")
    rows = data.get("results", [])
    if not rows:
        return "_No ProbSparse results yet: run `python bench/probsparse.py`._"
    out = [f"**{data['note']}.**", ""] if data.get("note") else []
    cell = {(r["method"], r["pass"], r["L"]): r for r in rows}
    methods = sorted({r["method"] for r in rows}, key=["probsparse", "probsparse_triton", "full", "sdpa"].index)
    head = " | ".join(f"{m} ms | {m} MiB" for m in methods)
    out += [f"| L | pass | {head} |", "|---:|---|" + "---:|" * 2 * len(methods)]
    for L in sorted({r["L"] for r in rows}):
        for pass_ in ("fwd", "fwd+bwd"):
            cells = []
            for m in methods:
                r = cell.get((m, pass_, L))
                cells += [f"{r['ms']:.1f}", f"{r['peak_mib']:.1f}"] if r else ["skipped", "skipped"]
            out.append(f"| {L} | {pass_} | " + " | ".join(cells) + " |")
    growth = [g for g in data.get("growth", []) if g.get("pass") == "fwd"]
    if growth:
        ref = growth[0]
        fits = ", ".join(f"{g['method']} L^{g['memory_exponent']:.2f}" for g in growth)
        out += [
            "",
            f"Peak memory grows as {fits} (forward; over this range L·ln L fits L^{ref['L_log_L_exponent']:.2f} "
            "and L² is L^2). Full attention at L=16384 is skipped: "
            + "; ".join(sorted({s["reason"] for s in data.get("skipped", [])}))
            + ".",
        ]
    out += [
        "",
        f"{data.get('memory_method', '')}. Timing: {data.get('time_method', '')}; the machine's load average was "
        f"{data.get('load_average', {}).get('start', ['?'])[0]} while it ran (other jobs), so the memory columns "
        "are the solid figures.",
        _provenance(data),
    ]
    return "\n".join(out)


TABLES = {
    "accuracy": accuracy_table,
    "zeroshot": zeroshot_table,
    "walkprobe": walk_probe_table,
    "decode": decode_table,
    "moe": moe_table,
    "service": service_table,
    "kernels": kernels_table,
    "probsparse": probsparse_table,
}


def main() -> int:
    text = README.read_text()
    for name, make in TABLES.items():
        block = f"<!-- results:{name} -->\n{make()}\n<!-- /results:{name} -->"
        pattern = rf"<!-- results:{name} -->.*?<!-- /results:{name} -->"
        text, n = re.subn(pattern, lambda _m, block=block: block, text, flags=re.S)
        if n != 1:
            print(f"README has no results:{name} markers", file=sys.stderr)
            return 1
    README.write_text(text)
    print(text[text.index("## Results") :])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
