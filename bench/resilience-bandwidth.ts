import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadClusterSpec } from "../src/cli/cluster-flag.js";
import type { Cluster } from "../src/cluster/types.js";
import { setLinkBandwidth } from "../src/harness/chaos.js";
import { netnsUnavailable, testbedUp } from "../src/harness/testbed.js";

/** One run of bench/testbed-adapt-run.ts in the testbed's coordinator namespace, the cut made at `faultAtMs`. */
interface AdaptRun {
  completed: number;
  failed: number;
  wrong: number;
  twice: number;
  replanAt: number[];
  doneAt: number[];
  replans: Array<{ reason: string; switchMs: number; pauseMs?: number }>;
}

/**
 * The bandwidth part of the resilience bench (root, the emulated testbed; run it inside
 * `flock /tmp/cleave-testbed.lock`): squeezenet1_1 in the MAC-balanced two-stage split on the local pair at
 * 1 Gbit/s (the best two-device plan there; its cut tensor is 32 KiB); 6 s in, the link is cut to 2 Mbit/s. Run twice in the same
 * session on the same testbed: with live re-partitioning, and staying on the old plan. Reports the time from
 * the cut to the re-partition and the throughput of each over the same window after it.
 */
export async function bandwidthCut(durationMs = 40000, faultAtMs = 6000): Promise<unknown> {
  const why = netnsUnavailable();
  if (why) return { skipped: why };
  const local = loadClusterSpec("local");
  const cluster: Cluster = {
    ...local,
    links: local.links.map((l) => ({ ...l, bandwidth: 125e6, latency: 1e-4 })),
  };
  const dir = mkdtempSync(join(tmpdir(), "cleave-bench-bw-"));
  const tb = await testbedUp(cluster, { stateFile: join(dir, "state.json"), prefix: "clbb", subnet: 13 });
  const script = join(import.meta.dirname, "testbed-adapt-run.js");
  const once1 = async (adapt: boolean): Promise<AdaptRun> => {
    setLinkBandwidth(tb.state, "core0", "core1", 125e6);
    const args = JSON.stringify({
      cluster,
      workers: tb.workers,
      token: tb.token,
      durationMs,
      faultAtMs,
      threshold: 0.3,
      adapt,
    });
    const exec = tb.coordinatorExec;
    const child = spawn(exec[0] ?? process.execPath, [
      ...(exec.length > 0 ? [...exec.slice(1), process.execPath] : []),
      script,
      args,
    ]);
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      if (/^FAULT$/m.test(out) && !out.includes("CUT")) {
        out += "CUT\n";
        setLinkBandwidth(tb.state, "core0", "core1", 2.5e5);
      }
    });
    child.stderr.resume();
    await once(child, "exit");
    return JSON.parse(out.trim().split("\n").at(-1)!);
  };
  try {
    const adapted = await once1(true);
    const kept = await once1(false);
    // The re-partition for the cut: the first after it (a loaded host may re-plan before it too). Throughput
    // over the same window for both: from 5 s after that re-partition (or after the cut) to the end.
    const k = adapted.replanAt.findIndex((t) => t >= faultAtMs);
    const from = (k >= 0 ? adapted.replanAt[k] : faultAtMs) + 5000;
    const rate = (r: AdaptRun, a: number, b: number) =>
      (r.doneAt.filter((t) => t >= a && t < b).length * 1000) / Math.max(1, b - a);
    const before = (r: AdaptRun) => rate(r, 2000, faultAtMs);
    const after = (r: AdaptRun) => rate(r, from, durationMs);
    return {
      model: "squeezenet1_1",
      cut: "MAC-balanced (32 KiB), 1 Gbit/s -> 2 Mbit/s",
      repartitionMs: k >= 0 ? adapted.replanAt[k] - faultAtMs : null,
      replans: adapted.replans.map((e, i) => ({
        atMs: adapted.replanAt[i] - faultAtMs,
        reason: e.reason,
        switchMs: e.switchMs,
        pauseMs: e.pauseMs,
      })),
      window: { fromMs: from, toMs: durationMs },
      adapt: { before: before(adapted), after: after(adapted), failed: adapted.failed, wrong: adapted.wrong },
      oldPlan: { before: before(kept), after: after(kept), failed: kept.failed, wrong: kept.wrong },
      regained: after(kept) > 0 ? after(adapted) / after(kept) : null,
    };
  } finally {
    await tb.down();
    rmSync(dir, { recursive: true, force: true });
  }
}
