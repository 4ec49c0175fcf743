import type { Manifest, ManifestStage } from "../../export/manifest.js";
import { errorMessage, RuntimeFault } from "../../errors.js";
import type { StageAssignment } from "../../partition/assign.js";
import { reassignStages } from "../control/reassign.js";
import type { Deployable, Replan } from "../control/service.js";
import { waiter } from "../deadline.js";
import { logger } from "../log.js";

const log = logger("runtime:loss-plan");

/** A split in the planner's terms: the stage assignment, each stage's devices, its predicted inferences/s. */
export interface PlannedSplit {
  assignment: StageAssignment;
  /** Each stage's device, or its replica group. */
  devices: ReadonlyArray<string | readonly string[]>;
  throughput?: number;
}

/**
 * A planner run after a loss (or a rejoin) over the devices `alive`, built above the runtime (e.g.
 * `lossReplanner` in harness/). `why.fallback` is the reassignment the runtime would deploy without it (the
 * running stages, a lost device's moved to a device left): resolve to undefined to keep it (the plan is not
 * better), or throw (no plan: the reassignment is deployed too).
 */
export type PlanAfterLoss = (
  alive: readonly string[],
  why: { reason: "loss" | "rejoin"; device: string; fallback: PlannedSplit },
) => Promise<PlannedSplit | undefined>;

/** What the re-plan after a loss chose, for the log and for tests. */
export interface LossPlanChoice {
  reason: "loss" | "rejoin";
  device: string;
  /** `planned`: the planner's split was deployed; `reassigned`: the running stages moved (and why). */
  used: "planned" | "reassigned";
  why: string;
  /** Time the planner took (or was given before it was cut off), ms. */
  planMs: number;
}

/** Options of {@link planThenReassign}. */
export interface PlanThenReassignOptions {
  /** The planner's time budget, ms (default 2000): past it, the reassignment is deployed. */
  budgetMs?: number;
  onChoice?: (c: LossPlanChoice) => void;
}

/** The devices a manifest stage names: its replica group, else its device. */
function groupOf(s: ManifestStage): string[] {
  return s.devices !== undefined && s.devices.length > 0
    ? s.devices
    : s.device !== undefined
      ? [s.device]
      : [];
}

/**
 * The controller's re-plan with a planner in front of the reassignment: over the devices left, `plan` is
 * asked for a split (given the reassignment of `first` as its fallback); its split is exported and deployed.
 * When it fails, takes longer than the budget, or keeps the fallback (not better), the reassignment of
 * `first`'s stages is deployed (no export; the stage files the workers hold are not sent again).
 * `first.assignment` is the assignment `first.manifest`'s stages were built from (one stage each).
 */
export function planThenReassign(
  plan: PlanAfterLoss,
  first: { manifest: Manifest; dir: string; assignment: StageAssignment },
  exportSplit: (split: PlannedSplit, throughput?: number) => Promise<Deployable>,
  opts: PlanThenReassignOptions = {},
): Replan {
  const budgetMs = opts.budgetMs ?? 2000;
  return async (alive, why) => {
    const moved = reassignStages(first.manifest, alive);
    const fallback: PlannedSplit = { assignment: first.assignment, devices: moved.stages.map(groupOf) };
    const reassigned: Deployable = { manifest: moved, dir: first.dir, split: fallback };
    const t0 = performance.now();
    const choose = (used: LossPlanChoice["used"], text: string) => {
      const c: LossPlanChoice = { ...why, used, why: text, planMs: performance.now() - t0 };
      log(`after the ${why.reason} of ${why.device}: ${used} (${text}, ${c.planMs.toFixed(0)} ms)`);
      opts.onChoice?.(c);
    };
    let next: PlannedSplit | undefined;
    const budget = waiter<undefined>({
      ms: budgetMs,
      timeout: () => new RuntimeFault("RUNTIME", `the planner took longer than ${budgetMs} ms`),
    });
    try {
      next = await Promise.race([plan(alive, { ...why, fallback }), budget.promise]);
    } catch (err) {
      choose("reassigned", errorMessage(err));
      return reassigned;
    } finally {
      budget.resolve(undefined);
    }
    // A planner that computes without yielding is only seen to overrun once it is done.
    if (next !== undefined && performance.now() - t0 > budgetMs) {
      choose("reassigned", `the planner took longer than ${budgetMs} ms`);
      return reassigned;
    }
    if (next === undefined) {
      choose("reassigned", "the planner's split is not better");
      return reassigned;
    }
    const d = await exportSplit(next, next.throughput);
    choose("planned", `${next.devices.length} stage(s) on ${[...new Set(next.devices.flat())].join(", ")}`);
    return d;
  };
}
