// graphile-worker driver (public API only): `node graphile.js run --db URL --n N --span-ms S
// --gap-ms G --est-rate R --workers 2 --concurrency C --poll-ms P --out DIR [--backlog M]
// [--kill-every-ms K --grace-ms G --sync]`.
// Enqueue: `graphile_worker.add_job(...)` in SQL, one transaction per 1,000 jobs (one
// statement calling add_job per row), each job with job_key = the (lead, touch) key and
// run_at = its due instant. Workers: `run()` with a task list, in separate processes.
"use strict";
const fs = require("fs");
const path = require("path");
const { Client } = require("pg");
const { args, nowMs, payload, recorder, supervise } = require("./common");

async function worker(a) {
  const { run, Logger } = require("graphile-worker");
  // Warnings and errors only: the default logger prints a line per job, which is not the
  // handler's work.
  const logger = new Logger(() => (level, message) => {
    if (level === "error" || level === "warning") console.error(`${level}: ${message}`);
  });
  const rec = recorder(a.file, a.sync);
  const runner = await run({
    connectionString: a.db,
    concurrency: Number(a.concurrency || 1),
    pollInterval: Number(a["poll-ms"] || 2000),
    noHandleSignals: true,
    logger,
    taskList: {
      fire: async (p) => {
        rec.record(p.i, p.due);
      },
    },
  });
  process.on("SIGTERM", async () => {
    await runner.stop();
    rec.flush();
    process.exit(0);
  });
}

async function enqueue(client, lo, hi, firstDue, span, n, base) {
  const rows = [];
  for (let i = lo; i < hi; i++) {
    const due = firstDue + Math.floor(((i - base) * span) / n);
    const p = payload(i);
    p.due = due;
    rows.push({ p, due, k: p.key });
  }
  await client.query("BEGIN");
  await client.query(
    `SELECT graphile_worker.add_job('fire', payload := x.p, run_at := to_timestamp(x.due / 1000.0), job_key := x.k)
       FROM json_to_recordset($1::json) AS x(p json, due float8, k text)`,
    [JSON.stringify(rows)],
  );
  await client.query("COMMIT");
}

// The W3 backlog (due tomorrow, stored before the clock starts, not timed): the set-based
// `graphile_worker.add_jobs`, 10,000 per transaction.
async function enqueueBacklog(client, m) {
  const tomorrow = Date.now() + 86400000;
  for (let lo = -m; lo < 0; lo += 10000) {
    const specs = [];
    for (let i = lo; i < Math.min(lo + 10000, 0); i++) {
      const p = payload(i);
      p.due = tomorrow + Math.floor(((i + m) * 3600000) / m);
      specs.push({ identifier: "fire", payload: p, run_at: new Date(p.due).toISOString(), job_key: p.key });
    }
    await client.query(
      "SELECT count(*) FROM graphile_worker.add_jobs(ARRAY(SELECT json_populate_recordset(NULL::graphile_worker.job_spec, $1::json)))",
      [JSON.stringify(specs)],
    );
  }
}

async function main() {
  const a = args(process.argv.slice(3));
  if (process.argv[2] === "worker") return worker(a);
  const { runMigrations } = require("graphile-worker");
  const n = Number(a.n), span = Number(a["span-ms"]), gap = Number(a["gap-ms"]);
  const backlog = Number(a.backlog || 0);
  const out = a.out;
  fs.mkdirSync(out, { recursive: true });
  // A fresh database per run.
  const admin = new Client({ connectionString: a.admin });
  await admin.connect();
  const dbName = `relentless_peer_graphile_${process.pid}`;
  await admin.query(`DROP DATABASE IF EXISTS ${dbName}`);
  await admin.query(`CREATE DATABASE ${dbName}`);
  const db = a.admin.replace(/\/[^/]*$/, `/${dbName}`);
  await runMigrations({ connectionString: db });
  const client = new Client({ connectionString: db });
  await client.connect();
  const version = require("graphile-worker/package.json").version;
  if (backlog > 0) {
    const t = nowMs();
    await enqueueBacklog(client, backlog);
    await client.query("VACUUM ANALYZE");
    console.error(`  backlog of ${backlog} stored in ${((nowMs() - t) / 1000).toFixed(1)} s`);
  }
  const enqStart = nowMs();
  const firstDue = Math.round(enqStart + (n * 1000) / Number(a["est-rate"]) + gap);
  for (let lo = 0; lo < n; lo += 1000) {
    await enqueue(client, lo, Math.min(lo + 1000, n), firstDue, span, n, 0);
    // A fresh database's jobs table has no statistics: the plan `add_job` caches on this
    // connection then scans the whole table for each job's key (the enqueue fell from
    // ~3,700 to ~290 jobs/s over 50,000 jobs, growing ~80 ms per 1,000 jobs already in).
    // ANALYZE after the first transaction invalidates that plan; a queue in service has
    // statistics, so this is graphile-worker as it runs, not as it starts.
    if (lo === 0) await client.query("ANALYZE graphile_worker._private_jobs");
  }
  const enqEnd = nowMs();
  console.error(`  enqueued ${n} in ${((enqEnd - enqStart) / 1000).toFixed(2)} s; first due in ${Math.round(firstDue - enqEnd)} ms`);
  const lastDue = firstDue + Math.floor(((n - 1) * span) / n);
  const workerArgs = ["--db", db, "--concurrency", a.concurrency || "1", "--poll-ms", a["poll-ms"] || "2000"];
  if (a.sync) workerArgs.push("--sync");
  const r = await supervise({
    script: __filename,
    workerArgs,
    workers: Number(a.workers || 2),
    out,
    killEvery: Number(a["kill-every-ms"] || 0),
    lastDue,
    grace: Number(a["grace-ms"] || 60000),
    pending: async () =>
      Number((await client.query("SELECT count(*) AS c FROM graphile_worker.jobs WHERE run_at < now() + interval '12 hours'")).rows[0].c),
  });
  const left = (await client.query("SELECT count(*) AS c, count(locked_at) AS locked FROM graphile_worker.jobs WHERE run_at < now() + interval '12 hours'")).rows[0];
  await client.end();
  await admin.query(`DROP DATABASE ${dbName} WITH (FORCE)`);
  await admin.end();
  fs.writeFileSync(path.join(out, "uncertain.csv"), "");
  fs.writeFileSync(
    path.join(out, "meta.json"),
    JSON.stringify(
      {
        system: a.system,
        n, backlog, span_ms: span,
        enqueue_start_ms: enqStart, enqueue_end_ms: enqEnd,
        first_due_ms: firstDue, last_due_ms: lastDue, workers_started_ms: r.started, end_ms: r.end,
        timed_out: r.timedOut, kills: r.kills, uncertain: 0,
        pending_at_end: Number(left.c), locked_at_end: Number(left.locked),
        settings: `graphile-worker ${version}, ${a.workers || 2} processes × concurrency ${a.concurrency || 1}, pollInterval ${a["poll-ms"] || 2000} ms, default job lock (4 h)`,
        enqueue: "graphile_worker.add_job in SQL, one transaction per 1,000",
      },
      null,
      2,
    ),
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
