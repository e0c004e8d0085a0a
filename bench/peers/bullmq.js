// BullMQ driver (public API only): `node bullmq.js run --redis PORT --n N --span-ms S
// --gap-ms G --est-rate R --workers 2 --concurrency C --out DIR [--backlog M]
// [--kill-every-ms K --grace-ms G --sync]`.
// Enqueue: `Queue.addBulk` of 1,000 jobs, each with `jobId` = the (lead, touch) key and
// `delay` = its due instant − now. Workers: `new Worker(...)` in separate processes.
"use strict";
const fs = require("fs");
const path = require("path");
const { args, nowMs, payload, recorder, supervise } = require("./common");
const { Queue, Worker } = require("bullmq");
const IORedis = require("ioredis");

const QUEUE = "bench";

async function worker(a) {
  const rec = recorder(a.file, a.sync);
  const w = new Worker(
    QUEUE,
    async (job) => {
      rec.record(job.data.i, job.data.due);
    },
    {
      connection: { host: "127.0.0.1", port: Number(a.redis), maxRetriesPerRequest: null },
      concurrency: Number(a.concurrency || 1),
    },
  );
  process.on("SIGTERM", async () => {
    await w.close();
    rec.flush();
    process.exit(0);
  });
}

async function enqueue(q, lo, hi, firstDue, span, n, base) {
  const jobs = [];
  const now = Date.now();
  for (let i = lo; i < hi; i++) {
    const due = firstDue + Math.floor(((i - base) * span) / n);
    const p = payload(i);
    p.due = due;
    jobs.push({
      name: "fire",
      data: p,
      opts: { jobId: p.key, delay: Math.max(0, due - now), removeOnComplete: true, removeOnFail: false },
    });
  }
  await q.addBulk(jobs);
}

async function main() {
  const a = args(process.argv.slice(3));
  if (process.argv[2] === "worker") return worker(a);
  const n = Number(a.n), span = Number(a["span-ms"]), gap = Number(a["gap-ms"]);
  const backlog = Number(a.backlog || 0);
  const out = a.out;
  fs.mkdirSync(out, { recursive: true });
  const connection = { host: "127.0.0.1", port: Number(a.redis) };
  const q = new Queue(QUEUE, { connection });
  const client = new IORedis({ host: "127.0.0.1", port: Number(a.redis) });
  await client.flushdb();
  if (backlog > 0) {
    const t = nowMs();
    const tomorrow = Date.now() + 86400000;
    for (let lo = -backlog; lo < 0; lo += 1000)
      await enqueue(q, lo, Math.min(lo + 1000, 0), tomorrow, 3600000, backlog, -backlog);
    console.error(`  backlog of ${backlog} stored in ${((nowMs() - t) / 1000).toFixed(1)} s`);
  }
  const enqStart = nowMs();
  const firstDue = Math.round(enqStart + (n * 1000) / Number(a["est-rate"]) + gap);
  for (let lo = 0; lo < n; lo += 1000) await enqueue(q, lo, Math.min(lo + 1000, n), firstDue, span, n, 0);
  const enqEnd = nowMs();
  console.error(`  enqueued ${n} in ${((enqEnd - enqStart) / 1000).toFixed(2)} s; first due in ${Math.round(firstDue - enqEnd)} ms`);
  const lastDue = firstDue + Math.floor(((n - 1) * span) / n);
  const workerArgs = ["--redis", a.redis, "--concurrency", a.concurrency || "1"];
  if (a.sync) workerArgs.push("--sync");
  // Pending = touches of the workload (not the backlog due tomorrow) not yet completed.
  const pendingCount = async () => {
    const c = await q.getJobCounts("wait", "active", "delayed", "prioritized", "paused", "waiting-children");
    return Object.values(c).reduce((s, v) => s + v, 0) - backlog;
  };
  const r = await supervise({
    script: __filename,
    workerArgs,
    workers: Number(a.workers || 2),
    out,
    killEvery: Number(a["kill-every-ms"] || 0),
    lastDue,
    grace: Number(a["grace-ms"] || 60000),
    pending: pendingCount,
  });
  const counts = await q.getJobCounts("wait", "active", "delayed", "failed");
  const info = await client.info("persistence");
  const aof = /aof_enabled:(\d)/.exec(info)?.[1] === "1";
  const redisVersion = /redis_version:([\d.]+)/.exec(await client.info("server"))?.[1];
  await q.obliterate({ force: true });
  await q.close();
  client.disconnect();
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
        pending_at_end: Math.max(0, (await Promise.resolve(counts.wait + counts.active + counts.delayed)) - backlog),
        failed_at_end: counts.failed,
        settings: `BullMQ ${require("bullmq/package.json").version} on Redis ${redisVersion} (${aof ? "AOF appendfsync everysec" : "no persistence"}), ${a.workers || 2} processes × concurrency ${a.concurrency || 1}, removeOnComplete, default lock/stalled settings`,
        enqueue: "Queue.addBulk of 1,000 (delay + jobId)",
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
