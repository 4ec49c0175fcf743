import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { CaseKind, Outcome } from "./cases.js";

/** Options of {@link fuzz}. */
export interface FuzzOptions {
  kind: CaseKind;
  /** Cases to run (0..count-1 of the seed). */
  count: number;
  seed?: number;
  /** A case taking longer than this is a hang: its process is killed and the run goes on after it, ms. */
  caseTimeoutMs?: number;
  /** Heap limit of the process running the cases, MiB: going over it is a crash. */
  heapMiB?: number;
}

/** What {@link fuzz} found: counts by outcome, and every case that was neither accepted nor refused cleanly. */
export interface FuzzReport {
  kind: CaseKind;
  seed: number;
  cases: number;
  ok: number;
  refused: number;
  /** Errors that are not cleave's one-line errors (a user would see "internal error"). */
  internal: Array<{ case: number; message: string }>;
  /** Cases past the time bound. */
  hangs: number[];
  /** Cases during which the process died (a signal, running out of memory). */
  crashes: Array<{ case: number; why: string }>;
  /** Wall time per case: mean and largest, ms. */
  meanMs: number;
  maxMs: number;
  /** The slowest cases, ms. */
  slowest: Array<{ case: number; ms: number }>;
  /** The most common refusal messages (first 60 characters) and how often each came. */
  refusals: Array<{ message: string; count: number }>;
}

const CHILD = fileURLToPath(new URL("./child.js", import.meta.url));

/**
 * Runs `count` generated cases in child processes, each case bounded in time and memory; a hang or a crash
 * is recorded and the run resumes with the next case in a fresh process.
 */
export async function fuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const seed = opts.seed ?? 1;
  const timeout = opts.caseTimeoutMs ?? 10_000;
  const report: FuzzReport = {
    kind: opts.kind,
    seed,
    cases: opts.count,
    ok: 0,
    refused: 0,
    internal: [],
    hangs: [],
    crashes: [],
    meanMs: 0,
    maxMs: 0,
    slowest: [],
    refusals: [],
  };
  const refusals = new Map<string, number>();
  let totalMs = 0;
  let next = 0;
  while (next < opts.count) {
    next = await new Promise<number>((resolve) => {
      const child = fork(CHILD, [opts.kind, String(seed), String(next), String(opts.count)], {
        execArgv: [`--max-old-space-size=${opts.heapMiB ?? 2048}`],
        stdio: ["ignore", "ignore", "ignore", "ipc"],
      });
      let current = next;
      let started = 0;
      let timer: NodeJS.Timeout | undefined;
      let hung = false;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          hung = true;
          child.kill("SIGKILL");
        }, timeout);
      };
      child.on("message", (m: { t: string; i: number; outcome?: Outcome }) => {
        if (m.t === "start") {
          current = m.i;
          started = performance.now();
          arm();
          return;
        }
        clearTimeout(timer);
        const ms = performance.now() - started;
        totalMs += ms;
        report.maxMs = Math.max(report.maxMs, ms);
        report.slowest.push({ case: m.i, ms: Math.round(ms) });
        report.slowest = report.slowest.sort((a, b) => b.ms - a.ms).slice(0, 3);
        const o = m.outcome!;
        if (o.kind === "ok") report.ok++;
        else if (o.kind === "refused") {
          report.refused++;
          const key = o.message.replace(/case\.onnx: /, "").slice(0, 60);
          refusals.set(key, (refusals.get(key) ?? 0) + 1);
        } else report.internal.push({ case: m.i, message: o.message });
        current = m.i + 1;
      });
      child.on("exit", (code, signal) => {
        clearTimeout(timer);
        if (current >= opts.count) return resolve(current);
        if (hung) report.hangs.push(current);
        else report.crashes.push({ case: current, why: signal ? `signal ${signal}` : `exit code ${code}` });
        resolve(current + 1);
      });
    });
  }
  report.meanMs = totalMs / Math.max(1, report.ok + report.refused + report.internal.length);
  report.refusals = [...refusals]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 12)
    .map(([message, count]) => ({ message, count }));
  return report;
}
