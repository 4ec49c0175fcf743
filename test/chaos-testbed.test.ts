import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { loadClusterSpec } from "../src/cli/cluster-flag.js";
import { setInterface } from "../src/harness/chaos.js";
import { netnsUnavailable, testbedUp } from "../src/harness/testbed.js";
import { cliCommand } from "../src/runtime/coordinator/local-cluster.js";
import { testbedPrefix } from "./helpers/testbed-prefix.js";

/**
 * Chaos on the live emulated testbed (root: network namespaces, tc, cgroups). Run it inside the testbed lock:
 * `flock /tmp/cleave-testbed.lock node --test dist/test/chaos-testbed.test.js`.
 */
const noNetns = netnsUnavailable();
const skip = noNetns ? `needs root with network namespaces and tc (${noNetns})` : false;

// The shipped local cluster (core0, core1 on one CPU each), so `cleave run` without --cluster plans on it too.
const cluster = loadClusterSpec("local");

test("a worker's interface taken down mid-run: a recovery happens, no request is lost", {
  skip,
}, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "cleave-chaos-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tb = await testbedUp(cluster, {
    stateFile: join(dir, "state.json"),
    prefix: testbedPrefix("tc"),
    subnet: 9,
  });
  try {
    // Enough requests that the run outlasts the fault on a fast host (600 took under 1.5 s on one).
    const requests = 2000;
    const child = spawn(
      tb.coordinatorExec[0],
      [
        ...tb.coordinatorExec.slice(1),
        ...cliCommand(),
        "run",
        "zoo:squeezenet1_1",
        "--stages",
        "2",
        "--requests",
        String(requests),
        "--json",
        "--workers",
        tb.workers.map((w) => `${w.name}=${w.endpoint}`).join(","),
        "--token",
        tb.token,
      ],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } },
    );
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    let downAt = 0;
    child.stderr.on("data", (d) => {
      err += d;
      if (downAt === 0 && /measuring/.test(err)) {
        downAt = 1;
        setTimeout(() => {
          setInterface(tb.state, "core1", false);
          downAt = performance.now();
        }, 300);
      }
    });
    const [code] = await once(child, "exit");
    assert.ok(downAt > 1, `the interface went down during the run (${err.slice(-400)})`);
    assert.equal(code, 0, err.slice(-1500));
    const r = JSON.parse(out);
    assert.equal(r.report.completed, requests);
    assert.equal(r.report.failed, 0, "no request lost");
    assert.ok(r.recoveries.length >= 1, "a recovery happened");
    assert.equal(r.recoveries[0].device, "core1");
    assert.equal(r.recoveries[0].cause, "unresponsive");
  } finally {
    await tb.down();
  }
});
