import { spawnSync } from "node:child_process";
import { RuntimeFault } from "../errors.js";
import { gsoLimit, gsoMaxSize, htbClassCommand, type TestbedState, writeCpuQuota } from "./testbed.js";

/**
 * Faults injected into a live emulated testbed (`testbedUp`, as root), for chaos tests and benches: a link's
 * bandwidth cut with `tc`, a device's CPU quota cut (cgroup v1 `cpu.cfs_quota_us`), a worker's interface taken
 * down or brought back. Devices are named as in the cluster; the testbed made namespace `<prefix>-<i>` and
 * cgroup `<prefix>-<i>` for the i-th device, its egress class `1:<10 + j>` towards device j and `1:9` towards the
 * coordinator.
 */

function run(cmd: string[]): void {
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: "utf8" });
  if (r.status !== 0)
    throw new RuntimeFault(
      "RUNTIME",
      `${cmd.join(" ")}: ${(r.stderr || r.error?.message || "failed").trim()}`,
    );
}

function indexOf(state: TestbedState, device: string): number {
  const i = state.workers.findIndex((w) => w.name === device);
  if (i < 0)
    throw new RuntimeFault(
      "RUNTIME",
      `testbed: no device '${device}' (devices: ${state.workers.map((w) => w.name).join(", ")})`,
      { device },
    );
  return i;
}

function needNetns(state: TestbedState, what: string): void {
  if (state.mode !== "netns")
    throw new RuntimeFault(
      "RUNTIME",
      `testbed: ${what} needs network namespaces (this testbed is ${state.mode})`,
    );
}

/**
 * Sets the bandwidth of the link `from -> to` (the sender's egress class), bytes/s; both directions when `both`.
 * A device's path to the coordinator follows its link to the output device (`to` the output device).
 */
export function setLinkBandwidth(
  state: TestbedState,
  from: string,
  to: string,
  bytesPerSecond: number,
  both = true,
): void {
  needNetns(state, "a bandwidth change");
  const change = (a: string, b: string) => {
    const i = indexOf(state, a);
    const j = indexOf(state, b);
    const ns = `${state.prefix}-${i}`;
    run(htbClassCommand(ns, "change", j, bytesPerSecond));
    if (b === state.outputDevice) run(htbClassCommand(ns, "change", "coordinator", bytesPerSecond));
    // Packets no larger than the new bucket; never raised (a limit below what other classes need costs CPU only).
    const gso = Math.min(state.gsoMaxSize?.[i] ?? 65536, gsoMaxSize(bytesPerSecond));
    if (gso !== state.gsoMaxSize?.[i]) run(gsoLimit(state, i, gso));
  };
  change(from, to);
  if (both) change(to, from);
}

/** Sets a device's CPU quota to `share` cores (cgroup v1; -1 or Infinity removes the quota). */
export function setCpuQuota(state: TestbedState, device: string, share: number): void {
  const dir = state.cgroups[indexOf(state, device)];
  if (dir === undefined)
    throw new RuntimeFault("RUNTIME", `testbed: ${device} has no cgroup (not root?)`, { device });
  writeCpuQuota(dir, share);
}

/** Takes a device's network interface down (`up` false) or brings it back. */
export function setInterface(state: TestbedState, device: string, up: boolean): void {
  needNetns(state, "taking an interface down");
  run(["ip", "-n", `${state.prefix}-${indexOf(state, device)}`, "link", "set", "eth0", up ? "up" : "down"]);
}
