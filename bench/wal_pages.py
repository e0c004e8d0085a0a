#!/usr/bin/env python3
"""Which tables and indexes a workload's commits dirty: WAL frames by table, per commit.

    bench/wal_pages.py DB            # DB-wal is read next to DB

Run it on a copy whose writer was stopped mid-run (kill -9, so the WAL is not checkpointed
away at close), e.g.:

    cp base.db run.db; relentless-bench --phase dispatch --db run.db --no-profile &
    sleep 12; kill -9 %1; bench/wal_pages.py run.db

The WAL is copied first, then each frame's page number is looked up in `dbstat` (read-only),
so pages allocated during the run are named too. Frames of earlier WAL generations still in
the file are counted as well: a sample of the last few thousand page writes, not a total.
"""
import collections
import shutil
import sqlite3
import struct
import sys
import tempfile

db = sys.argv[1]
with tempfile.NamedTemporaryFile(suffix=".wal") as copy:
    shutil.copyfile(db + "-wal", copy.name)
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    owner = dict((p, n) for n, p in con.execute("SELECT name, pageno FROM dbstat"))
    con.close()
    with open(copy.name, "rb") as f:
        page_size = struct.unpack(">8I", f.read(32))[2]
        frames, commits = collections.Counter(), 0
        while len(header := f.read(24)) == 24:
            page, db_size = struct.unpack(">2I", header[:8])
            f.seek(page_size, 1)
            frames[owner.get(page, "(freed since)")] += 1
            commits += db_size != 0  # a commit's last frame carries the database size

total = sum(frames.values())
print(f"{total} frames, {commits} commits, {total / max(commits, 1):.0f} frames per commit")
for name, n in frames.most_common(25):
    print(f"{n / max(commits, 1):8.1f} per commit  {100 * n / total:5.1f} %  {name}")
