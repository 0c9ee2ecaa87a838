#!/usr/bin/python3
"""Runs every workload of bench/workloads under each allocator, side by side.

Allocators: glibc (nothing preloaded), and jemalloc, tcmalloc, mimalloc (the
Debian packages) and Rulloc (librulloc.so), each through LD_PRELOAD; also
Rulloc in hardened mode (RULLOC_HARDENED=1), to show what it costs. The
hardened column is left out when the best of each row is chosen. Runs are
interleaved (every allocator runs a configuration before any repeats it) and
repeated; each figure is the median of the repetitions. A time ratio is
paired: the median, over the repetitions, of a run's time over the best time
of the same repetition, so that a slow spell of a shared machine, which
slows every allocator of the repetitions it covers, cancels out instead of
deciding a row by which allocators' medians it reaches. Prints a table per
workload, a geometric-mean summary and, for each peer, how many rows Rulloc
is faster on and which it is slower on or not told apart on (by a
significance test over the repetitions, adjusted for the number of rows),
and writes
results.csv, results.json (with every repetition's time), a Markdown table
(results.md) and a chart (chart.png, drawn by gnuplot) to --out.
"""

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import time

from scipy import stats  # Debian's python3-scipy
from statsmodels.stats.multitest import multipletests  # Debian's python3-statsmodels

LIBDIR = "/usr/lib/x86_64-linux-gnu"
PEERS = [
    ("glibc", None),
    ("jemalloc", f"{LIBDIR}/libjemalloc.so.2"),
    ("tcmalloc", f"{LIBDIR}/libtcmalloc_minimal.so.4"),
    ("mimalloc", f"{LIBDIR}/libmimalloc.so.2"),
]
HARDENED = "rulloc-hardened"
# A row counts as faster or slower than a peer only at this false discovery
# rate (see verdicts_against).
SIGNIFICANCE = 0.05
WORKLOADS = ["larson", "prodcons", "threads", "burst", "realloc", "churn", "large",
             "fragment", "peakidle"]


class Mode:
    """How much a mode runs: thread counts, the workloads' scale (with
    per-workload overrides), and repetitions (fewer for the hardened column,
    which is shown but not judged)."""

    def __init__(self, thread_counts, scale, repetitions, hardened_repetitions=None,
                 scale_overrides=None):
        self.thread_counts = thread_counts
        self.scale = scale
        self.repetitions = repetitions
        self.hardened_repetitions = hardened_repetitions or repetitions
        self.scale_overrides = scale_overrides or {}

    def scale_of(self, workload):
        return self.scale_overrides.get(workload, self.scale)

    def overrides_for(self, workloads):
        return {w: s for w, s in self.scale_overrides.items() if w in workloads}

    def describe(self, workloads, hardened):
        overrides = self.overrides_for(workloads)
        text = f"scale {self.scale:g}"
        if overrides:
            text += " (" + ", ".join(f"{w} {s:g}" for w, s in overrides.items()) + ")"
        text = f"{self.repetitions} repetitions, medians; {text}"
        if hardened and self.hardened_repetitions != self.repetitions:
            text += f"; {HARDENED}: {self.hardened_repetitions} repetitions"
        return text


MODES = {
    # Five runs in quick mode (under a minute and a half): with three, one
    # run that met a slow spell of the host (a huge-page fault that waited,
    # a descheduled thread) could still decide a row.
    "quick": Mode([4], 0.25, 5),
    # Nine runs in full mode: on a shared machine a run in five can be off by
    # 20% or more, and a median of five still moved rows by a few percent.
    # Scale 3: at scale 1 the shortest rows (larson, 35 ms at 4 threads)
    # were spread by up to 11%, and a neighbour's burst decided them.
    # The long rows run less: `large` (3-7 s a run for glibc, jemalloc and
    # mimalloc at scale 3), `peakidle` and `churn`; and the hardened column,
    # which no verdict uses (22 s a run on churn), three times. At nine
    # repetitions of everything at scale 3 the mode took 48 minutes on a
    # slow 2-core host, over the 30 it has.
    "full": Mode([1, 2, 4, 8], 3.0, 9, hardened_repetitions=3,
                 scale_overrides={"large": 1.0, "peakidle": 1.5, "churn": 1.5}),
}


def run_once(workloads, workload, threads, scale, preload, extra_env):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.pop("RULLOC_HARDENED", None)
    env.update(extra_env)
    if preload:
        env["LD_PRELOAD"] = preload
    cmd = [workloads, f"--workload={workload}", f"--threads={threads}", f"--scale={scale}"]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    out = proc.stdout.read().decode()
    err = proc.stderr.read().decode()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or "checksum=" not in out:
        raise RuntimeError(f"{' '.join(cmd)} (LD_PRELOAD={preload}) failed "
                           f"({proc.returncode}): {err.strip()[:300]}")
    fields = dict(item.split("=", 1) for item in out.split())
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": int(fields["peak_rss_kb"]) / 1024.0,
        "after_idle_rss_mb": int(fields["after_idle_rss_kb"]) / 1024.0,
        "checksum": fields["checksum"],
    }


def geomean(values):
    values = [v for v in values if v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def best(results, workload, threads, allocators, key):
    """The best figure of a row among the allocators that compete."""
    return min(results[(workload, threads, a)][key] for a in allocators if a != HARDENED)


def time_ratio(results, workload, threads, a, allocators):
    """The paired time ratio to the best of the row, or, for results saved
    without the repetitions' times, the ratio of the medians."""
    r = results[(workload, threads, a)]
    if "time_ratio" in r:
        return r["time_ratio"]
    return r["wall_s"] / best(results, workload, threads, allocators, "wall_s")


def has_samples(results, allocators, configs):
    return all("wall_samples" in results[(w, t, a)] for w, t in configs for a in allocators)


def paired_ratio(walls, best_walls):
    return statistics.median(w / b for w, b in zip(walls, best_walls))


def add_paired_ratios(results, allocators, configs):
    """Sets each result's time_ratio from the repetitions' times (wall_samples)."""
    for workload, threads in configs:
        competing = [results[(workload, threads, a)]["wall_samples"]
                     for a in allocators if a != HARDENED]
        best_walls = [min(walls) for walls in zip(*competing)]
        for a in allocators:
            r = results[(workload, threads, a)]
            r["time_ratio"] = paired_ratio(r["wall_samples"], best_walls)


def fastest(results, workload, threads, allocators):
    return min((a for a in allocators if a != HARDENED),
               key=lambda a: time_ratio(results, workload, threads, a, allocators))


def difference_p_value(walls, peer_walls):
    """How likely repetitions at least this far apart from the peer's (either
    way) would be if both were as fast, and which way their ranks lean: a
    two-sided Wilcoxon signed-rank test on the repetitions' log time ratios
    (paired, as the runs were interleaved). Returns (p, lean), lean +1 if the
    ranks of Rulloc's slower repetitions outweigh those of its faster ones,
    -1 the other way, 0 if even. With 5 repetitions p is at least 1/16, with
    9 at least 1/256."""
    return signed_rank([math.log(w / p) for w, p in zip(walls, peer_walls)])


def signed_rank(logs):
    """(p, lean) of the two-sided exact signed-rank test on log ratios."""
    # Zeros are dropped here: with a zero among them, SciPy leaves its exact
    # distribution for a normal approximation, too lenient for so few.
    logs = [x for x in logs if x != 0]
    if not logs:
        return 1.0, 0
    ranks = stats.rankdata([abs(x) for x in logs])
    up = sum(r for r, x in zip(ranks, logs) if x > 0)
    down = sum(r for r, x in zip(ranks, logs) if x < 0)
    lean = 1 if up > down else -1 if up < down else 0
    return float(stats.wilcoxon(logs, alternative="two-sided", method="exact").pvalue), lean


def with_verdicts(keys, ratios, p_values, leans):
    """(key, ratio, q, verdict) for each key: q its p-value adjusted for
    testing all the keys at once (Benjamini-Hochberg: of those called
    different, at most SIGNIFICANCE are expected to be wrongly so), the
    verdict "faster" or "slower" where q < SIGNIFICANCE and the ratio and the
    ranks agree on the way, "tie" where the repetitions do not tell them
    apart."""
    q_values = multipletests(p_values, alpha=SIGNIFICANCE, method="fdr_bh")[1]
    verdicts = []
    for key, ratio, q, lean in zip(keys, ratios, q_values, leans):
        # (With 9 repetitions or fewer a row's median ratio and ranks that
        # lean apart never reach q < 0.05; with more, they can. A workload's
        # ratio is not a median of the values tested: see there.)
        verdict = "tie"
        if q < SIGNIFICANCE and ratio < 1 and lean < 0:
            verdict = "faster"
        elif q < SIGNIFICANCE and ratio > 1 and lean > 0:
            verdict = "slower"
        verdicts.append((key, ratio, float(q), verdict))
    return verdicts


def verdicts_against(results, peer, configs):
    """Rulloc against `peer` on every row: (row, ratio, q, verdict), where the
    ratio is Rulloc's time over the peer's (median of the repetitions'
    ratios), adjusted over the rows (see with_verdicts)."""
    rows, ratios, p_values, leans = [], [], [], []
    for w, t in configs:
        walls = results[(w, t, "rulloc")]["wall_samples"]
        peer_walls = results[(w, t, peer)]["wall_samples"]
        rows.append((w, t))
        ratios.append(paired_ratio(walls, peer_walls))
        p, lean = difference_p_value(walls, peer_walls)
        p_values.append(p)
        leans.append(lean)
    return with_verdicts(rows, ratios, p_values, leans)


def workload_verdicts_against(results, peer, configs):
    """Rulloc against `peer` on every workload, its thread counts together:
    (workload, ratio, q, verdict), where the ratio is the geometric mean of
    its rows' median ratios, and the test runs over the repetitions, each
    the mean of its rows' log ratios (a repetition runs a workload's rows
    back to back: the unit that the host's spells share), adjusted over the
    workloads (see with_verdicts). A workload can be shown faster while one
    of its rows is not."""
    workloads = list(dict.fromkeys(w for w, _ in configs))
    ratios, p_values, leans = [], [], []
    for workload in workloads:
        rows = [(w, t) for w, t in configs if w == workload]
        samples = [(results[(w, t, "rulloc")]["wall_samples"],
                    results[(w, t, peer)]["wall_samples"]) for w, t in rows]
        ratios.append(geomean([paired_ratio(walls, peer_walls) for walls, peer_walls in samples]))
        repetitions = min(min(len(walls), len(peer_walls)) for walls, peer_walls in samples)
        p, lean = signed_rank([
            statistics.fmean(math.log(walls[i] / peer_walls[i]) for walls, peer_walls in samples)
            for i in range(repetitions)])
        p_values.append(p)
        leans.append(lean)
    return with_verdicts(workloads, ratios, p_values, leans)


def print_rulloc_against_peers(results, allocators, configs):
    """For each peer, the rows where Rulloc is faster, slower, or not told
    apart from it; then the first target of the comparison: faster than
    glibc and jemalloc on every row, and on every workload."""
    if "rulloc" not in allocators or not has_samples(results, allocators, configs):
        return
    repetitions = min(len(results[(w, t, "rulloc")]["wall_samples"]) for w, t in configs)
    testable = 2 / 2**repetitions < SIGNIFICANCE
    print("\nRulloc's time over each peer's (median of the repetitions' ratios). 'faster' or "
          "'slower' where a two-sided\nWilcoxon signed-rank test over the paired repetitions, "
          "adjusted for testing every row (Benjamini-Hochberg),\ngives q < "
          f"{SIGNIFICANCE}; 'tie' where it does not (the runs do not tell the two apart).")
    if not testable:
        print(f"With {repetitions} repetitions no row can reach q < {SIGNIFICANCE} (p is at "
              f"least 2/2^{repetitions}; it takes 6): listed by the ratio alone.")
    above_one, shown = [], 0
    targeted = [p for p in allocators if p in ("glibc", "jemalloc")]
    for peer in allocators:
        if peer in ("rulloc", HARDENED):
            continue
        verdicts = verdicts_against(results, peer, configs)
        by_verdict = {"faster": [], "slower": [], "tie": []}
        for (w, t), ratio, q, verdict in verdicts:
            spread = results[(w, t, "rulloc")].get("wall_mad_pct", 0)
            if testable:
                by_verdict[verdict].append(f"{w} {t}t {ratio:.3f} (±{spread:.1f}%, q={q:.3f})")
            elif ratio >= 1:
                by_verdict["slower"].append(f"{w} {t}t {ratio:.3f} (±{spread:.1f}%)")
            if peer in targeted:
                shown += verdict == "faster"
                if ratio >= 1:
                    above_one.append(f"{peer} {w} {t}t {ratio:.3f}")
        if testable:
            print(f"  {peer:<15} faster on {len(by_verdict['faster'])} of {len(verdicts)} rows")
            for verdict in ("slower", "tie"):
                if by_verdict[verdict]:
                    print(f"  {'':<15} {verdict + ':':<7} " + ", ".join(by_verdict[verdict]))
        else:
            print(f"  {peer:<15} ratio not below 1: " +
                  (", ".join(by_verdict["slower"]) or "none"))
    if targeted:
        print(f"\nFaster than {' and '.join(targeted)} on every row, by the median ratio: " +
              ("yes" if not above_one else "no; not on " + ", ".join(above_one)))
        if testable:
            print(f"  shown faster by the test (q < {SIGNIFICANCE}, each peer's rows adjusted "
                  f"together) on {shown} of their {len(targeted) * len(configs)} rows")
        print_workload_target(results, targeted, configs, testable)


def print_workload_target(results, targeted, configs, testable):
    """The first target read per workload, its thread counts together."""
    not_below, shown, not_shown = [], 0, []
    verdicts = [(peer, v) for peer in targeted
                for v in workload_verdicts_against(results, peer, configs)]
    for peer, (workload, ratio, q, verdict) in verdicts:
        if ratio >= 1:
            not_below.append(f"{peer} {workload} {ratio:.3f}")
        shown += verdict == "faster"
        if verdict != "faster":
            not_shown.append(f"{peer} {workload} {ratio:.3f} (q={q:.3f}, {verdict})")
    workloads = len(verdicts) // len(targeted)
    print(f"Faster than {' and '.join(targeted)} on every workload, by the geometric mean of its "
          "rows' median ratios: " +
          ("yes" if not not_below else "no; not on " + ", ".join(not_below)))
    if testable:
        print(f"  shown faster by the test over its repetitions (q < {SIGNIFICANCE}, each "
              f"peer's workloads adjusted together) on {shown} of their "
              f"{len(targeted) * workloads} workloads" +
              (": not on " + ", ".join(not_shown) if not_shown else ""))


def print_tables(results, allocators, configs):
    for workload, threads in configs:
        rows = {a: results[(workload, threads, a)] for a in allocators}
        best_rss = best(results, workload, threads, allocators, "peak_rss_mb")
        print(f"\n{workload}, {threads} thread(s)")
        print(f"  {'allocator':<15} {'wall s':>8} {'±%':>5} {'ratio':>6} {'cpu s':>8} "
              f"{'peak MB':>8} {'ratio':>6} {'idle MB':>8}")
        for a in allocators:
            r = rows[a]
            idle = f"{r['after_idle_rss_mb']:8.1f}" if workload == "peakidle" else f"{'-':>8}"
            spread = r.get("wall_mad_pct")
            spread = f"{spread:5.1f}" if spread is not None else f"{'-':>5}"
            ratio = time_ratio(results, workload, threads, a, allocators)
            print(f"  {a:<15} {r['wall_s']:8.3f} {spread} {ratio:6.2f} "
                  f"{r['cpu_s']:8.3f} {r['peak_rss_mb']:8.1f} {r['peak_rss_mb'] / best_rss:6.2f} {idle}")
    paired = has_samples(results, allocators, configs)
    print("\n±%: median absolute deviation of the wall times of the repetitions, in % of "
          "their median:\nallocators whose ratios differ by less than that are within the noise of the row.")
    print("Time ratio: " + ("median over the repetitions of the run's time over the repetition's best"
                            " (so it can rank two close allocators unlike their medians)." if paired
                            else "median time over the best median time of the row."))
    print("\nGeometric mean over all workloads (ratio to the best allocator of each workload)")
    print(f"  {'allocator':<15} {'time':>6} {'peak RSS':>9}")
    summary = {}
    for a in allocators:
        time_ratios, rss_ratios = [], []
        for workload, threads in configs:
            time_ratios.append(time_ratio(results, workload, threads, a, allocators))
            rss_ratios.append(results[(workload, threads, a)]["peak_rss_mb"] /
                              best(results, workload, threads, allocators, "peak_rss_mb"))
        summary[a] = (geomean(time_ratios), geomean(rss_ratios))
        print(f"  {a:<15} {summary[a][0]:6.2f} {summary[a][1]:9.2f}")
    if HARDENED in allocators and "rulloc" in allocators:
        if paired:
            cost = geomean([paired_ratio(results[(w, t, HARDENED)]["wall_samples"],
                                         results[(w, t, "rulloc")]["wall_samples"])
                            for w, t in configs])
        else:
            cost = geomean([results[(w, t, HARDENED)]["wall_s"] / results[(w, t, "rulloc")]["wall_s"]
                            for w, t in configs])
        print(f"\nHardened mode costs {cost:.2f}x Rulloc's time (geometric mean over the rows)")
    print_rulloc_against_peers(results, allocators, configs)
    return summary


def write_outputs(out_dir, results, allocators, configs, meta):
    os.makedirs(out_dir, exist_ok=True)
    keys = ["wall_s", "cpu_s", "peak_rss_mb", "after_idle_rss_mb"]
    if all("wall_mad_pct" in r for r in results.values()):
        keys.append("wall_mad_pct")
    if all("time_ratio" in r for r in results.values()):
        keys.append("time_ratio")
    json_keys = keys + (["wall_samples"] if all("wall_samples" in r for r in results.values())
                        else [])
    with open(os.path.join(out_dir, "results.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["workload", "threads", "allocator"] + keys)
        for (workload, threads, a), r in sorted(results.items()):
            writer.writerow([workload, threads, a] + [f"{r[k]:.4f}" for k in keys])
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": [
            dict(workload=w, threads=t, allocator=a, **{k: r[k] for k in json_keys})
            for (w, t, a), r in sorted(results.items())]}, f, indent=1)
    # Markdown: one row per configuration, wall time and peak RSS per allocator.
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write("| workload | " + " | ".join(allocators) + " |\n")
        f.write("| --- |" + " --- |" * len(allocators) + "\n")
        for workload, threads in configs:
            winner = fastest(results, workload, threads, allocators)
            cells = []
            for b in allocators:
                r = results[(workload, threads, b)]
                spread = f" ±{r['wall_mad_pct']:.1f}%" if "wall_mad_pct" in r else ""
                ratio = time_ratio(results, workload, threads, b, allocators)
                cell = f"{r['wall_s']:.3f} s{spread} ({ratio:.2f}×), {r['peak_rss_mb']:.0f} MB"
                if workload == "peakidle":
                    cell += f", idle {r['after_idle_rss_mb']:.0f} MB"
                cells.append(("**" + cell + "**") if b == winner else cell)
            f.write(f"| {workload}, {threads}t | " + " | ".join(cells) + " |\n")
        f.write("| geometric mean of ratios to the best (time, peak RSS) | " + " | ".join(
            f"{meta['summary'][a]['time_geomean']:.2f}, {meta['summary'][a]['rss_geomean']:.2f}"
            for a in allocators) + " |\n")
        if "description" in meta:
            f.write(f"\n{meta['mode']} mode: {meta['description']}.\n")
    # Chart: time and peak-RSS ratio to the best allocator, per configuration.
    data = os.path.join(out_dir, "chart.dat")
    with open(data, "w") as f:
        f.write("config " + " ".join(f"{a}_time {a}_rss" for a in allocators) + "\n")
        for workload, threads in configs:
            best_rss = best(results, workload, threads, allocators, "peak_rss_mb")
            values = []
            for a in allocators:
                r = results[(workload, threads, a)]
                values += [f"{time_ratio(results, workload, threads, a, allocators):.3f}",
                           f"{r['peak_rss_mb'] / best_rss:.3f}"]
            f.write(f"{workload}/{threads}t " + " ".join(values) + "\n")
    n = len(allocators)
    plots_time = ", ".join(
        f"'{data}' using {2 + 2 * i}:xtic(1) title '{a}'" for i, a in enumerate(allocators))
    plots_rss = ", ".join(
        f"'{data}' using {3 + 2 * i}:xtic(1) title '{a}'" for i, a in enumerate(allocators))
    script = f"""
set terminal png size {max(900, 60 * len(configs) * n // 3)},900
set output '{os.path.join(out_dir, "chart.png")}'
set multiplot layout 2,1 title "{meta['title']}"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key outside right top
set xtics rotate by -45 font ",9"
set grid ytics
set yrange [0:*]
set ylabel 'time ratio to the best'
plot {plots_time}
set ylabel 'peak RSS / best'
plot {plots_rss}
unset multiplot
"""
    subprocess.run(["gnuplot"], input=script.encode(), check=True)


def render(path, out_dir):
    with open(path) as f:
        saved = json.load(f)
    keys = ["wall_s", "cpu_s", "peak_rss_mb", "after_idle_rss_mb", "wall_mad_pct",
            "time_ratio", "wall_samples"]
    results, names, configs = {}, [], []
    for row in saved["results"]:
        results[(row["workload"], row["threads"], row["allocator"])] = {
            k: row[k] for k in keys if k in row}
        if row["allocator"] not in names:
            names.append(row["allocator"])
        if (row["workload"], row["threads"]) not in configs:
            configs.append((row["workload"], row["threads"]))
    order = {a: i for i, a in enumerate([n for n, _ in PEERS] + ["rulloc", HARDENED])}
    names.sort(key=lambda a: order.get(a, len(order)))
    configs.sort(key=lambda c: (WORKLOADS.index(c[0]), c[1]))
    if has_samples(results, names, configs):
        add_paired_ratios(results, names, configs)  # from the samples, not the stored ratios
    else:
        for r in results.values():
            r.pop("time_ratio", None)
    summary = print_tables(results, names, configs)
    meta = dict(saved["meta"])
    meta["summary"] = {a: {"time_geomean": t, "rss_geomean": m} for a, (t, m) in summary.items()}
    write_outputs(out_dir, results, names, configs, meta)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=sorted(MODES), default="quick")
    parser.add_argument("--workloads", help="path of the workloads binary")
    parser.add_argument("--rulloc", help="path of librulloc.so")
    parser.add_argument("--out", default="bench-results")
    parser.add_argument("--only", default="", help="comma-separated workloads to run")
    parser.add_argument("--no-hardened", action="store_true",
                        help="leave out Rulloc's hardened mode")
    parser.add_argument("--render", metavar="RESULTS_JSON",
                        help="do not run: print and write the outputs of an earlier run")
    args = parser.parse_args()
    if args.render:
        render(args.render, args.out)
        return
    if not args.workloads or not args.rulloc:
        parser.error("--workloads and --rulloc are required to run (only --render needs neither)")

    mode = MODES[args.mode]
    allocators = [(name, path, {}) for name, path in PEERS
                  if path is None or os.path.exists(path)]
    missing = [name for name, path in PEERS if path is not None and not os.path.exists(path)]
    if missing:
        print(f"note: not installed, left out: {', '.join(missing)}", file=sys.stderr)
    allocators.append(("rulloc", os.path.abspath(args.rulloc), {}))
    if not args.no_hardened:
        allocators.append((HARDENED, os.path.abspath(args.rulloc), {"RULLOC_HARDENED": "1"}))
    names = [a for a, _, _ in allocators]
    workloads = [w for w in WORKLOADS if not args.only or w in args.only.split(",")]
    configs = [(w, t) for w in workloads for t in (mode.thread_counts if w != "churn" else [1])]

    def runs_in(rep):
        return [a for a in allocators if a[0] != HARDENED or rep < mode.hardened_repetitions]

    samples = {}
    total = sum(len(runs_in(rep)) for rep in range(mode.repetitions)) * len(configs)
    done = 0
    started = time.monotonic()
    for rep in range(mode.repetitions):
        for ci, (workload, threads) in enumerate(configs):
            # Rotate the order so that no allocator always runs first.
            running = runs_in(rep)
            shift = (rep + ci) % len(running)
            for name, preload, extra_env in running[shift:] + running[:shift]:
                r = run_once(args.workloads, workload, threads, mode.scale_of(workload), preload,
                             extra_env)
                samples.setdefault((workload, threads, name), []).append(r)
                done += 1
                elapsed = time.monotonic() - started
                print(f"\r[{done}/{total}] {elapsed:5.0f}s  {workload:<9} {threads}t {name:<15} "
                      f"{r['wall_s']:7.3f}s", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    results = {}
    for key, runs in samples.items():
        checksums = {r["checksum"] for r in runs}
        if len(checksums) != 1:
            raise RuntimeError(f"{key}: checksums differ between runs: {checksums}")
        results[key] = {k: statistics.median(r[k] for r in runs)
                        for k in ["wall_s", "cpu_s", "peak_rss_mb", "after_idle_rss_mb"]}
        walls = [r["wall_s"] for r in runs]
        results[key]["wall_samples"] = walls
        results[key]["wall_mad_pct"] = 100 * statistics.median(
            abs(w - results[key]["wall_s"]) for w in walls) / results[key]["wall_s"]
    for workload, threads in configs:
        sums = {results_checksum for results_checksum in
                (samples[(workload, threads, a)][0]["checksum"] for a in names)}
        if len(sums) != 1:
            raise RuntimeError(f"{workload}/{threads}: allocators disagree on the checksum")
    add_paired_ratios(results, names, configs)

    description = mode.describe(workloads, HARDENED in names)
    print(f"\n{args.mode} mode: {description}")
    summary = print_tables(results, names, configs)
    meta = {"mode": args.mode, "repetitions": mode.repetitions, "scale": mode.scale,
            "scale_overrides": mode.overrides_for(workloads),
            "hardened_repetitions": mode.hardened_repetitions if HARDENED in names else 0,
            "description": description,
            "title": f"Rulloc vs peers ({args.mode} mode, ratio to the best; lower is better)",
            "summary": {a: {"time_geomean": t, "rss_geomean": m} for a, (t, m) in summary.items()}}
    write_outputs(args.out, results, names, configs, meta)
    print(f"\nwrote {args.out}/results.csv, results.json, results.md, chart.png")


if __name__ == "__main__":
    main()
