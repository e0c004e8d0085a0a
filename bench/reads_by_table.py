#!/usr/bin/env python3
"""Which tables and indexes a thread reads from the file (pages not in SQLite's own cache):
the `pread64` calls of an strace log, by the table or index owning each page.

    bench/reads_by_table.py DB LOG...

Record a few seconds of one thread (its id from bench/threads.py), then stop the process
with kill -9 so that the WAL is left beside DB and pages allocated during the run are named:

    strace -p TID -e trace=pread64,pwrite64 -o writer.log & sleep 3; kill %1
    kill -9 PID; bench/reads_by_table.py run.db writer.log

strace slows the thread down, so read the shares, not the rates. Calls are also counted by
file descriptor and size (`ls -l /proc/PID/fd` tells which is the database and which the
WAL; a WAL frame is written as a 24-byte header and a page).
"""
import collections
import re
import sqlite3
import sys

db = sys.argv[1]
con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
owner = dict((p, n) for n, p in con.execute("SELECT name, pageno FROM dbstat"))
page_size = con.execute("PRAGMA page_size").fetchone()[0]
con.close()
call = re.compile(r"(pread64|pwrite64)\((\d+), .*, (\d+), (\d+)\) = (\d+)")
for log in sys.argv[2:]:
    by_table = collections.Counter()
    by_call = collections.Counter()
    for line in open(log):
        m = call.match(line)
        if not m:
            continue
        name, fd, size, offset = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))
        by_call[(name, fd, size)] += 1
        if name == "pread64" and size == page_size and offset % page_size == 0:
            by_table[(fd, owner.get(offset // page_size + 1, "(not in the file's map)"))] += 1
    print(f"== {log}")
    for (name, fd, size), n in by_call.most_common():
        print(f"  {n:7}  {name} fd {fd}, {size} bytes")
    total = sum(by_table.values()) or 1
    for (fd, table), n in by_table.most_common(25):
        print(f"  {n:7}  {100 * n / total:5.1f} %  fd {fd}  {table}")
