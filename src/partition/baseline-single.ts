import { allowedDevices, type BaselineResult, bestOf, notApplicable, pricedBaseline } from "./baseline.js";
import type { Objective, ResolvedConstraints } from "./constraints.js";
import type { PlanProblem } from "./problem.js";

const NAME = "single";
const DESCRIPTION = "whole model on the best single device";

/** The whole model on each allowed device; the best for the objective. */
export function singleDeviceBaseline(
  p: PlanProblem,
  rc: ResolvedConstraints,
  objective: Objective,
): BaselineResult {
  const options = allowedDevices(p, rc).map((d) =>
    pricedBaseline(p, rc, NAME, `${DESCRIPTION} (${p.devices[d].name})`, {
      candidate: { stages: [{ device: d, start: 0, end: p.n }] },
    }),
  );
  return bestOf(options, objective, notApplicable(NAME, DESCRIPTION, "no device may run stages"));
}
