import assert from "node:assert/strict";
import { test } from "node:test";
import { loadCluster } from "../src/cluster/load.js";
import { type CoRunMeasurement, withCoRun } from "../src/harness/corun.js";
import { join } from "node:path";

const clusters = join(import.meta.dirname, "..", "..", "examples", "clusters");

test("co-run figures on a device under a quota: transfer CPU stretched by its share, slowdown by the others'", () => {
  const c = loadCluster(join(clusters, "camera-server.yaml"));
  const m: CoRunMeasurement = {
    model: "m",
    requests: 10,
    coordinatorCpuMs: 1,
    devices: [
      {
        name: "camera",
        aloneMs: 8,
        togetherMs: 9.6,
        factor: 1.2,
        transferCpu: 1.5e-9,
        aloneThroughput: 100,
        togetherThroughput: 90,
      },
      {
        name: "server",
        aloneMs: 8,
        togetherMs: 8.8,
        factor: 1.1,
        transferCpu: 2e-9,
        aloneThroughput: 100,
        togetherThroughput: 95,
      },
    ],
  };
  const out = withCoRun(c, m);
  const camera = out.devices.find((d) => d.name === "camera")!;
  const server = out.devices.find((d) => d.name === "server")!;
  // An eighth of a core: the worker's I/O takes eight times as long as measured without the quota.
  assert.ok(Math.abs(camera.transferCpu! - 1.2e-8) < 1e-20, `camera ${camera.transferCpu}`);
  assert.ok(Math.abs(server.transferCpu! - 2e-9) < 1e-20, `server ${server.transferCpu}`);
  // The camera keeps the server busy an eighth of the time; the server keeps the camera's core busy fully.
  assert.ok(Math.abs(server.coRunSlowdown! - (1 + 0.1 * 0.125)) < 1e-12);
  assert.ok(Math.abs(camera.coRunSlowdown! - 1.2) < 1e-12);
  // A device under a quota leaves idle time: the coordinator's CPU is not split over the devices.
  assert.equal(camera.coordinatorCpu, undefined);
});
