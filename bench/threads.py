#!/usr/bin/env python3
"""Where a running process's threads spend a few seconds: per thread, the share of the time
on a core and waiting in the run queue for one (`/proc/PID/task/*/schedstat`), the bytes and
calls read and written (`/io`), and the context switches a second (`/status`).

    bench/threads.py PID [SECS]      # default 5 s

For instance, 5 s into a dispatch phase:

    relentless-bench --phase dispatch --db run.db --no-profile &
    sleep 5; bench/threads.py $(pgrep -f 'phase dispatch') 4

The SQLite connections' threads are named `sqlite-writer-N`, `sqlite-reader-N` and
`sqlite-checkpoint-N` (the store names them; Linux shows the first 15 characters, so
`sqlite-checkpoi`, and `sqlite-reader-1` for reader 12 as well).
"""
import os
import sys
import time

pid = sys.argv[1]
secs = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0


def snap():
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        d = f"/proc/{pid}/task/{t}"
        try:
            comm = open(f"{d}/comm").read().strip()
            cpu, wait, _ = map(int, open(f"{d}/schedstat").read().split())
            io = dict(line.split(": ") for line in open(f"{d}/io").read().splitlines())
            st = dict(
                line.split(":\t")
                for line in open(f"{d}/status").read().splitlines()
                if ":\t" in line
            )
            out[t] = (
                comm,
                cpu,
                wait,
                int(io["rchar"]),
                int(io["syscr"]),
                int(io["wchar"]),
                int(io["syscw"]),
                int(st["voluntary_ctxt_switches"]),
                int(st["nonvoluntary_ctxt_switches"]),
            )
        except (FileNotFoundError, ProcessLookupError, KeyError, ValueError):
            pass  # a thread that ended meanwhile
    return out


a = snap()
time.sleep(secs)
b = snap()
print(
    f"{'tid':>8} {'thread':18} {'on cpu':>7} {'waits':>6} {'read MB':>8} {'reads':>8}"
    f" {'write MB':>9} {'writes':>8} {'vol cs/s':>9} {'invol/s':>8}"
)
rows = []
for t, y in b.items():
    x = a.get(t, (y[0],) + (0,) * 8)
    rows.append((y[1] - x[1], t, y, x))
for _, t, y, x in sorted(rows, reverse=True):
    print(
        f"{t:>8} {y[0]:18} {100 * (y[1] - x[1]) / 1e9 / secs:6.1f}% {100 * (y[2] - x[2]) / 1e9 / secs:5.1f}%"
        f" {(y[3] - x[3]) / 1e6:8.1f} {y[4] - x[4]:8} {(y[5] - x[5]) / 1e6:9.1f} {y[6] - x[6]:8}"
        f" {(y[7] - x[7]) / secs:9.0f} {(y[8] - x[8]) / secs:8.0f}"
    )
