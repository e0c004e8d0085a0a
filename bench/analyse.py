#!/usr/bin/env python3
"""Issue 8 analyser: reads the run folders bench/run.sh wrote and prints a markdown report.

    python3 bench/analyse.py RESULTS_DIR [--plot W1.png] > report.md

RESULTS_DIR/<workload>/<system>/run<k>/{meta.json,fired.csv,uncertain.csv} from the Relentless
binary and the peer drivers (fired.csv: key,due_ms,fired_ms,pid, one line per delivery);
RESULTS_DIR/ceilings/*.json; RESULTS_DIR/machine.json. Medians over the runs of a system.
"""
import csv
import json
import math
import os
import statistics
import sys
from collections import defaultdict


def pct(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    rank = min(len(sorted_vals), max(1, math.ceil(q * len(sorted_vals))))
    return sorted_vals[rank - 1]


def analyse_run(d):
    meta = json.load(open(os.path.join(d, "meta.json")))
    n = meta["n"]
    first = {}  # key -> (due, fired) of the first delivery
    deliveries = 0
    dup_keys = set()
    pids = set()
    with open(os.path.join(d, "fired.csv")) as f:
        for row in csv.reader(f):
            if len(row) < 4:
                continue
            key = int(row[0])
            if key < 0 or key >= n:
                continue  # the W3 backlog (due tomorrow) or garbage
            due, fired = float(row[1]), float(row[2])
            pids.add(row[3])
            deliveries += 1
            if key in first:
                dup_keys.add(key)
                if fired < first[key][1]:
                    first[key] = (due, fired)
            else:
                first[key] = (due, fired)
    uncertain = set()
    up = os.path.join(d, "uncertain.csv")
    if os.path.exists(up):
        uncertain = {int(l) for l in open(up) if l.strip()}
    late = sorted(f - due for due, f in first.values())
    fired_times = [f for _, f in first.values()]
    first_due, last_due = meta["first_due_ms"], meta["last_due_ms"]
    last_fired = max(fired_times) if fired_times else float("nan")
    missing = n - len(set(first) | uncertain)
    # From the first due instant, or from when the workers were started if the enqueue
    # overran the planned start (the workers start when the enqueue ends).
    t0 = max(first_due, meta.get("workers_started_ms", first_due))
    secs = (last_fired - t0) / 1000.0 if fired_times else float("nan")
    # peak 1-second rate
    buckets = defaultdict(int)
    for t in fired_times:
        buckets[int(t // 1000)] += 1
    r = {
        "system": meta.get("system"),
        "settings": meta.get("settings", ""),
        "enqueue": meta.get("enqueue", ""),
        "n": n,
        "enqueue_per_s": n / max(1e-9, (meta["enqueue_end_ms"] - meta["enqueue_start_ms"]) / 1000.0),
        "gap_ms": first_due - meta["enqueue_end_ms"],
        "fired": len(first),
        "fired_per_s": len(first) / secs if secs and secs > 0 else float("nan"),
        "peak_1s": max(buckets.values()) if buckets else 0,
        "p50": pct(late, 0.5),
        "p99": pct(late, 0.99),
        "p999": pct(late, 0.999),
        "max": late[-1] if late else float("nan"),
        "clear_s": (last_fired - last_due) / 1000.0 if fired_times else float("nan"),
        "duplicates": deliveries - len(first),
        "dup_keys": len(dup_keys),
        "missing": missing,
        "uncertain": len(uncertain),
        "uncertain_fired": len(uncertain & set(first)),
        "kills": meta.get("kills", 0),
        "timed_out": meta.get("timed_out", False),
        "pending_at_end": meta.get("pending_at_end"),
        "processes": len(pids),
        "series": [(due - first_due, f - due) for due, f in first.values()],
    }
    return r


def med(vals):
    vals = [v for v in vals if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.median(vals) if vals else float("nan")


def fmt(v, digits=0):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def ms(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if abs(v) >= 10_000:
        return f"{v / 1000:,.1f} s"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:,.1f}"


ORDER = [
    "relentless-sqlite",
    "relentless-postgres-1",
    "relentless-postgres-2",
    "relentless-postgres-4",
    "graphile-default-poll",
    "graphile-poll-100ms",
    "bullmq-aof-everysec",
    "bullmq-no-persistence",
]


def order_key(s):
    return (ORDER.index(s) if s in ORDER else len(ORDER), s)


def main():
    root = sys.argv[1]
    plot = None
    if "--plot" in sys.argv:
        plot = sys.argv[sys.argv.index("--plot") + 1]
    machine = {}
    mp = os.path.join(root, "machine.json")
    if os.path.exists(mp):
        machine = json.load(open(mp))
    ceilings = {}
    cdir = os.path.join(root, "ceilings")
    if os.path.isdir(cdir):
        for name in sorted(os.listdir(cdir)):
            if name.endswith(".json"):
                ceilings[name[:-5]] = json.load(open(os.path.join(cdir, name)))
    out = []
    p = out.append
    p(f"Results: `{root}` ({machine.get('mode', '?')} run, {machine.get('date', '?')})\n")
    if machine:
        p("Machine: " + "; ".join(f"{k}: {v}" for k, v in machine.items() if k not in ("mode", "date")) + "\n")

    sqlite_ceiling = ceilings.get("sqlite-normal", {}).get("claim_per_sec")
    pg_ceiling = max(
        [c.get("claim_rows_per_sec", 0) for k, c in ceilings.items() if k.startswith("pgbench-c")] or [0]
    ) or None

    w1_series = {}
    for wl in sorted(os.listdir(root)):
        wdir = os.path.join(root, wl)
        if not wl.startswith("W") or not os.path.isdir(wdir):
            continue
        results = {}
        for system in sorted(os.listdir(wdir), key=order_key):
            runs = []
            for run in sorted(os.listdir(os.path.join(wdir, system))):
                rd = os.path.join(wdir, system, run)
                if os.path.exists(os.path.join(rd, "meta.json")) and os.path.exists(os.path.join(rd, "fired.csv")):
                    runs.append(analyse_run(rd))
            if runs:
                results[system] = runs
        if not results:
            continue
        ref = results.get("relentless-sqlite")
        ref_rate = med([r["fired_per_s"] for r in ref]) if ref else None
        n = next(iter(results.values()))[0]["n"]
        p(f"\n### {wl} ({n:,} touches)\n")
        p("| system | runs | enqueue /s | fired /s (first due → last fired)¹ | peak fired in 1 s | vs Relentless SQLite | vs storage ceiling | lateness p50 / p99 / p99.9 / max (ms) | last fired after last due (s) | duplicates | missing | uncertain | kills |")
        p("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for system, runs in results.items():
            rate = med([r["fired_per_s"] for r in runs])
            ceil = sqlite_ceiling if "sqlite" in system else (pg_ceiling if ("postgres" in system or "graphile" in system) else None)
            p(
                "| {s} | {k} | {e} | **{f}** | {pk} | {vr} | {vc} | {l50} / **{l99}** / {l999} / {lmax} | {c} | {d} | {m} | {u} | {kl} |".format(
                    s=system,
                    k=len(runs),
                    e=fmt(med([r["enqueue_per_s"] for r in runs])),
                    f=fmt(rate),
                    pk=fmt(med([r["peak_1s"] for r in runs])),
                    vr=f"{rate / ref_rate:.2f}×" if ref_rate else "—",
                    vc=f"{rate / ceil:.2f}×" if ceil else "—",
                    l50=ms(med([r["p50"] for r in runs])),
                    l99=ms(med([r["p99"] for r in runs])),
                    l999=ms(med([r["p999"] for r in runs])),
                    lmax=ms(med([r["max"] for r in runs])),
                    c=fmt(med([r["clear_s"] for r in runs]), 2),
                    d=fmt(med([r["duplicates"] for r in runs])),
                    m=(f"({fmt(med([r['missing'] for r in runs]))} not fired by the deadline)" if any(r["timed_out"] and not r["kills"] for r in runs) else fmt(med([r["missing"] for r in runs]))),
                    u=fmt(med([r["uncertain"] for r in runs])) + (f" ({fmt(med([r['uncertain_fired'] for r in runs]))} of them delivered)" if any(r["uncertain"] for r in runs) else ""),
                    kl=fmt(med([r["kills"] for r in runs])),
                )
            )
        p("")
        p("¹ distinct touches fired ÷ (last fired − first due, or − the workers' start if the enqueue overran the planned start). When a system keeps up, this is the offered rate (n ÷ span); only a system that falls behind shows its own limit. Lateness = fired − due of each touch's first delivery. Medians over the runs.\n")
        if wl == "W0":
            p("W0: every touch is due at the same instant, so fired /s is each system's drain rate, and \"vs storage ceiling\" compares it with the bare claim loop on the same storage (SQLite claim loop, `synchronous=NORMAL`; the best `pgbench` claim): each fired touch there is one row updated once; in Relentless the touch twice (`sending`, then `sent`, in two transactions per batch: a provider's send happens between them), its lead, its enrollment (the one-step plan completes), an activity and the report counters.\n")
        for system, runs in results.items():
            notes = []
            if any(r["timed_out"] for r in runs):
                notes.append("stopped at the grace deadline with work left" + (f" (pending at end: {runs[0]['pending_at_end']})" if runs[0].get("pending_at_end") is not None else ""))
            if any(r["gap_ms"] < 0 for r in runs):
                notes.append(f"enqueue overran the planned start: first due {-min(r['gap_ms'] for r in runs) / 1000:.1f} s before the enqueue ended")
            notes.append(runs[0]["settings"])
            p(f"- `{system}`: " + "; ".join(notes))
        if wl.startswith("W1"):
            w1_series = {s: rs[0]["series"] for s, rs in results.items()}

    if ceilings:
        p("\n### Storage ceilings\n")
        p("| ceiling | rows | insert /s (transactions of 1,000) | claim /s (batches of 500) |")
        p("|---|---|---|---|")
        for k, c in sorted(ceilings.items()):
            p(f"| {k} | {fmt(c.get('n'))} | {fmt(c.get('insert_per_sec'))} | {fmt(c.get('claim_per_sec') or c.get('claim_rows_per_sec'))} |")

    print("\n".join(out))

    if plot and w1_series:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(10, 5.5), dpi=100)
        for system in sorted(w1_series, key=order_key):
            pts = sorted(w1_series[system])
            if not pts:
                continue
            # p99 of lateness per bucket of due time (1/60 of the span)
            span = max(x for x, _ in pts) or 1
            width = max(span / 60.0, 1.0)
            b = defaultdict(list)
            for x, y in pts:
                b[int(x // width)].append(y)
            xs = sorted(b)
            ys = [max(0.1, pct(sorted(b[i]), 0.99)) for i in xs]
            ax.plot([(i + 0.5) * width / 1000.0 for i in xs], ys, label=system, linewidth=1.4)
        ax.set_yscale("log")
        ax.set_xlabel("due time, seconds after the first touch is due")
        ax.set_ylabel("lateness (fired − due), p99 per bucket, ms (log)")
        ax.set_title("W1 burst: lateness over time (" + machine.get("mode", "") + " run)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(plot)


if __name__ == "__main__":
    main()
