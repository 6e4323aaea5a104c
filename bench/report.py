"""Write the results page (docs/RESULTS.md) and the README's results blocks from bench/results/*.json.

Every figure the documentation quotes comes from those files: each table is the block between its
`<!-- results:NAME -->` and `<!-- /results:NAME -->` markers, rewritten wherever the markers are (the
full tables live on the results page; the README keeps a summary and the shipped pretrained model's
scores). A table whose markers are on neither page is an error.

    python bench/report.py            # rewrite the blocks, print which pages changed
    python bench/report.py --check    # exit 1 if a block differs from what the JSON gives (nothing written)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS, read  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS_PAGE = ROOT / "docs" / "RESULTS.md"
PAGES = (RESULTS_PAGE, README)
SHIPPED = ROOT / "pretrained"


def _num(value: float | None) -> str:
    """Three decimals, or a dash where a figure does not exist (e.g. no published anchor)."""
    return "—" if value is None else f"{value:.3f}"


def _provenance(data: dict) -> str:
    """The line naming where, at which commit and with which command a results file was produced."""
    return f"Measured on {data.get('machine')} at commit `{data.get('commit')}` with `{data.get('command')}`."


def accuracy_table() -> str:
    data = read("accuracy")
    # Probabilistic rows: zeroshot_table; rows of other tasks (classify: nids_table) have their own tables.
    rows = [r for r in data.get("results", []) if "mase" not in r and r.get("task", "forecast") == "forecast"]
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


def pretrained_table() -> str:
    """The shipped pretrained models (pretrained/*/PROVENANCE.json) and the zero-shot rows of
    bench/results/accuracy.json measured on that very file (same weights SHA-256)."""
    rows = read("accuracy").get("results", [])
    out = [
        "| model | file | SHA-256 | recipe, seed | dataset | MASE / SN | CRPS / SN | measured at | command |",
        "|---|---|---|---|---|---:|---:|---|---|",
    ]
    for prov_file in sorted(SHIPPED.glob("*/PROVENANCE.json")):
        prov = json.loads(prov_file.read_text())
        sha = prov.get("sha256", "")
        mine = [r for r in rows if r.get("weights_sha256") == sha and r.get("zero_shot")]
        for r in sorted(mine, key=lambda r: r["dataset"]):
            out.append(
                f"| {prov_file.parent.name} | {prov.get('dtype')}, {prov.get('size_bytes', 0) / 2**20:.1f} MiB | "
                f"`{sha[:12]}` | {prov.get('recipe')}, {prov.get('train_seed')} | {r['dataset']} | "
                f"**{_num(r['mase'])}** | **{_num(r['crps'])}** | `{r.get('commit')}` | `{r.get('command')}` |"
            )
    if len(out) == 2:
        return "_No scored pretrained model yet: see pretrained/README.md._"
    return "\n".join(out)


def nids_table() -> str:
    """The classify rows of accuracy.json (bench/nids_accuracy.py): FlowTransformer variants and LightGBM per
    dataset, every test flow, and the published KDDTest+ anchors."""
    data = read("accuracy")
    rows = [r for r in data.get("results", []) if r.get("task") == "classify"]
    if not rows:
        return "_No intrusion-detection results yet: run `python bench/nids_accuracy.py`._"
    out = [
        "| dataset | labels | model | variant | accuracy | macro-F1 | weighted F1 | F1 per class | benign FPR | "
        "FPR @ 95 % detection | params | epochs | test flows |",
        "|---|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    order = {"lightgbm": 0, "last": 1, "cls": 2, "gap": 3, "flatten": 4, "causal": 5, "categorical": 6}
    for r in sorted(rows, key=lambda r: (r["dataset"], order.get(r["variant"], 9), r["variant"])):
        per_class = ", ".join(f"{c} {f:.2f}" for c, f in zip(r["classes"], r["f1"], strict=True))
        out.append(
            f"| {r['dataset']} | {r['labels']} | {r['model']} | {r['variant']} | **{_num(r['accuracy'])}** | "
            f"**{_num(r['macro_f1'])}** | {_num(r['weighted_f1'])} | {per_class} | {_num(r['benign_fpr'])} | "
            f"{_num(r['fpr_at_95'])} | {r['params']:,} | {r.get('epochs', '—')} | {r['test_windows']} |"
        )
    anchors = next((r["paper"]["anchors"] for r in rows if "anchors" in r.get("paper", {})), [])
    if anchors:
        out += ["", "Published KDDTest+ binary accuracies (trained on the full KDDTrain+; quoted, not re-run): "]
        out[-1] += "; ".join(f"{a['model']} {a['accuracy']:.3f} ({a['source']})" for a in anchors) + "."
    commands = sorted({(r.get("commit"), r.get("command")) for r in rows}, key=str)
    out.append(f"\n- measured on {data.get('machine')}; commits and commands:")
    out += [f"  - `{c}`: `{cmd}`" for c, cmd in commands]
    return "\n".join(out)


def nids_summary_table() -> str:
    """The README's short form of nids_table: each dataset's recipe (last-token head) beside LightGBM."""
    rows = [r for r in read("accuracy").get("results", []) if r.get("task") == "classify"]
    rows = [r for r in rows if r["variant"] in ("last", "lightgbm")]
    if not rows:
        return "_No intrusion-detection results yet: run `python bench/nids_accuracy.py`._"
    out = [
        "| dataset | model | accuracy | macro-F1 | benign FPR | FPR @ 95 % detection | size |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: (r["dataset"], r["variant"] != "last")):
        name = "FlowTransformer (recipe)" if r["model"] == "flowtransformer" else "LightGBM"
        size = f"{r['params']:,} parameters" if r["model"] == "flowtransformer" else r.get("size", "")
        out.append(
            f"| {r['dataset']} | {name} | **{_num(r['accuracy'])}** | **{_num(r['macro_f1'])}** | "
            f"{_num(r['benign_fpr'])} | {_num(r['fpr_at_95'])} | {size} |"
        )
    return "\n".join(out)


def nids_throughput_table() -> str:
    """bench/nids_throughput.py: flows scored per second in the model, the predictor and over HTTP."""
    data = read("nids_throughput")
    rows = data.get("rows", [])
    if not rows:
        return "_No throughput results yet: run `python bench/nids_throughput.py`._"
    out = [
        "| path | batch / flows | windows or flows per s | × official 6k | peak memory over start |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        size = r.get("batch") or r.get("flows") or r.get("flows_per_request")
        rate = r.get("windows_per_s") or r.get("flows_per_s")
        memory = r.get("peak_mib_over_start", r.get("server_peak_mib_over_ready"))
        ratio = f"{rate / 6000:.1f}" if rate else "—"
        extra = f" ({r['file_mib']} MiB file)" if "file_mib" in r else ""
        mem = "—" if memory is None else f"{memory:.0f} MiB"
        if "peak_mib" in r:
            mem += f" (process peak {r['peak_mib']:.0f} MiB)"
        out.append(f"| {r['path']}{extra} | {size:,} | **{rate:,}** | {ratio} | {mem} |")
    out += [
        "",
        f"{data.get('baseline')}. In-process paths with {data.get('threads')} torch threads, the server with "
        f"{data.get('server_torch_threads')}; load average {data.get('load_average')} (start, end): the machine "
        f"was shared. {data.get('notes', '')}.",
        _provenance(data),
    ]
    return "\n".join(out)


TABLES = {
    "pretrained": pretrained_table,
    "nids": nids_table,
    "nids_summary": nids_summary_table,
    "nids_throughput": nids_throughput_table,
    "accuracy": accuracy_table,
    "zeroshot": zeroshot_table,
    "walkprobe": walk_probe_table,
    "decode": decode_table,
    "moe": moe_table,
    "service": service_table,
    "kernels": kernels_table,
    "probsparse": probsparse_table,
}


def render(pages: dict[Path, str]) -> tuple[dict[Path, str], list[str]]:
    """The pages with every table block rewritten; and the tables whose markers no page has."""
    out, missing = dict(pages), []
    for name, make in TABLES.items():
        block = f"<!-- results:{name} -->\n{make()}\n<!-- /results:{name} -->"
        pattern = rf"<!-- results:{name} -->.*?<!-- /results:{name} -->"
        found = 0
        for path, text in out.items():
            out[path], n = re.subn(pattern, lambda _m, block=block: block, text, flags=re.S)
            found += n
        if not found:
            missing.append(name)
    return out, missing


def main(argv: list[str] | None = None) -> int:
    check = "--check" in (sys.argv[1:] if argv is None else argv)
    pages = {p: p.read_text() for p in PAGES if p.exists()}
    new, missing = render(pages)
    if missing:
        print(f"no page has the markers of: {', '.join(missing)}", file=sys.stderr)
        return 1
    stale = [p for p in pages if new[p] != pages[p]]
    if check:
        for p in stale:
            print(f"{p.relative_to(ROOT)} is not what bench/results gives: run python bench/report.py", file=sys.stderr)
        return 1 if stale else 0
    for p in stale:
        p.write_text(new[p])
        print(f"rewrote {p.relative_to(ROOT)}")
    if not stale:
        print("every results block is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
