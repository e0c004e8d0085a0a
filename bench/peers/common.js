// Shared by the peer drivers: arguments, the workload's due instants, the recording handler,
// the supervisor loop (spawn workers, optional SIGKILL every K ms, wait until drained).
// Output, as the Rust side writes it: fired.csv (key,due_ms,fired_ms,pid), uncertain.csv,
// meta.json in --out.
"use strict";
const fs = require("fs");
const path = require("path");
const { spawn } = require("child_process");
const { performance } = require("perf_hooks");

function args(argv) {
  const a = {};
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, "");
    if (k === "sync") a.sync = true;
    else a[k] = argv[++i];
  }
  return a;
}

const nowMs = () => performance.timeOrigin + performance.now();

// ~200 bytes, with the unique (lead, touch) key.
function payload(i) {
  return {
    key: `lead-${i}/touch-0`,
    i,
    to: `+1555${1000000000 + i}`,
    body:
      "Hi Lead, this is Agent following up on your request about the home at 12 Main Street. Are you still looking? Reply here or call me back.",
  };
}

// Each worker process: records (key, due, fired, pid) in memory and writes them on SIGTERM;
// with --sync, one write(2) per job so a SIGKILLed process's records survive.
function recorder(file, sync) {
  const recs = [];
  const fd = sync ? fs.openSync(file, "a") : null;
  const pid = process.pid;
  return {
    record(i, due) {
      const at = nowMs();
      if (fd !== null) fs.writeSync(fd, `${i},${due},${at.toFixed(3)},${pid}\n`);
      else recs.push(i, due, at);
    },
    flush() {
      if (fd !== null) return;
      const lines = [];
      for (let j = 0; j < recs.length; j += 3)
        lines.push(`${recs[j]},${recs[j + 1]},${recs[j + 2].toFixed(3)},${pid}\n`);
      fs.writeFileSync(file, lines.join(""));
    },
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Supervise `workers` processes of `script worker …`; resolve when pending() is 0 after the
// last due instant, or at max(last due, start) + grace.
async function supervise(o) {
  const { script, workerArgs, workers, out, killEvery, lastDue, grace, pending } = o;
  fs.mkdirSync(out, { recursive: true });
  const gens = new Array(workers).fill(0);
  const start = (idx) => {
    const file = path.join(out, `raw-${idx}-${gens[idx]}.csv`);
    const log = fs.openSync(path.join(out, `worker-${idx}-${gens[idx]}.log`), "w");
    return spawn(process.execPath, [script, "worker", ...workerArgs, "--file", file], {
      stdio: ["ignore", log, log],
    });
  };
  const started = nowMs();
  const children = [];
  for (let i = 0; i < workers; i++) children.push(start(i));
  let kills = 0;
  let nextKill = nowMs() + (killEvery || 0);
  let timedOut = false;
  for (;;) {
    await sleep(100);
    const now = nowMs();
    if (killEvery > 0 && now >= nextKill && now <= lastDue) {
      nextKill += killEvery;
      const c = children[0];
      const exited = new Promise((r) => c.once("exit", r));
      c.kill("SIGKILL");
      await exited;
      kills++;
      gens[0]++;
      children[0] = start(0);
    }
    if (now > lastDue) {
      if ((await pending()) === 0) break;
      // Grace runs from the last due instant, or from the workers' start when the enqueue
      // overran it (the run then measures how fast the backlog drains).
      if (now > Math.max(lastDue, started) + grace) {
        timedOut = true;
        break;
      }
    }
  }
  const end = nowMs();
  await Promise.all(
    children.map(
      (c) =>
        new Promise((r) => {
          if (c.exitCode !== null || c.signalCode !== null) return r();
          c.once("exit", r);
          c.kill("SIGTERM");
        }),
    ),
  );
  // raw-* → fired.csv
  const names = fs.readdirSync(out).filter((n) => n.startsWith("raw-")).sort();
  const outFd = fs.openSync(path.join(out, "fired.csv"), "w");
  for (const n of names) {
    const text = fs.readFileSync(path.join(out, n), "utf8");
    // drop a last line cut short by SIGKILL
    const lines = text.split("\n").filter((l) => l.split(",").length === 4);
    if (lines.length) fs.writeSync(outFd, lines.join("\n") + "\n");
    fs.unlinkSync(path.join(out, n));
  }
  fs.closeSync(outFd);
  return { started, end, kills, timedOut };
}

module.exports = { args, nowMs, payload, recorder, supervise, sleep };
