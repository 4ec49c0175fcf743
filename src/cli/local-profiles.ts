import type { Cluster } from "../cluster/types.js";
import type { Profile } from "../cost/profile.js";
import {
  type EmulatedProfileOptions,
  type LocalProfileNote,
  withLocalProfiles as harnessLocalProfiles,
} from "../harness/emulated-profiles.js";
import type { AnalyzedModel } from "../ir/analyze.js";
import type { CliIO } from "./command.js";
import { fmtTime } from "./format.js";
import type { Progress } from "./progress.js";

export { emulatedProfile } from "../harness/emulated-profiles.js";

/** The line on stderr that says where an emulated device's figures come from. */
export function localProfileLine(n: LocalProfileNote): string {
  const names = n.devices.join(", ");
  const what = `${n.source} at ${n.threads} thread(s), ${fmtTime(n.wholeRun)} per inference`;
  return n.fromCache
    ? `cleave: ${names} priced from this machine's cached profile of ${what} (${n.path})`
    : `cleave: ${names} priced from a profile of ${what} measured now on this machine in ${fmtTime(n.seconds)}` +
        (n.writeError === undefined ? `, cached in ${n.path}` : ` (not cached: ${n.writeError})`);
}

/** The harness's profiling callbacks for a command: its progress bar, and the source line on stderr. */
export function profileCallbacks(io: CliIO, bar?: Progress): EmulatedProfileOptions {
  return {
    onProfile: (n) => io.err(localProfileLine(n)),
    onFraction: (done, what) => bar?.fraction(done, what),
    onStepDone: () => bar?.done(),
    onStep: (s) => bar?.step(s),
  };
}

/**
 * Profiles for the devices of `cluster` emulated on this machine that have none ({@link harnessLocalProfiles}),
 * saying in one line on stderr where the figures come from. Returns `given` with those profiles added.
 */
export function withLocalProfiles(
  model: AnalyzedModel,
  cluster: Cluster,
  given: Readonly<Record<string, Profile>>,
  io: CliIO,
  bar?: Progress,
): Promise<Record<string, Profile>> {
  return harnessLocalProfiles(model, cluster, given, profileCallbacks(io, bar));
}
