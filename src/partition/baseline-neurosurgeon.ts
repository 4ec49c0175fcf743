import { allowedDevices, type BaselineResult, bestOf, notApplicable, pricedBaseline } from "./baseline.js";
import type { Objective, ResolvedConstraints } from "./constraints.js";
import type { Candidate } from "./evaluate.js";
import { linkOf, type PlanProblem } from "./problem.js";

const NAME = "neurosurgeon";
const DESCRIPTION = "best single cut between the input device and one other device";

/**
 * Neurosurgeon (Kang et al., ASPLOS 2017): one cut of the layer sequence, the head on the device holding the
 * input and the tail on one other device (every cut, including none, and every linked device tried).
 */
export function neurosurgeonBaseline(
  p: PlanProblem,
  rc: ResolvedConstraints,
  objective: Objective,
): BaselineResult {
  const head = p.inputDevice;
  if (!rc.allowed[head])
    return notApplicable(NAME, DESCRIPTION, `the input device ${p.devices[head].name} may not run stages`);
  const options: BaselineResult[] = [];
  for (const tail of allowedDevices(p, rc)) {
    if (tail === head || linkOf(p, head, tail) < 0) continue;
    for (let b = 0; b <= p.n; b++) {
      const candidate: Candidate =
        b === 0
          ? { stages: [{ device: tail, start: 0, end: p.n }] }
          : b === p.n
            ? { stages: [{ device: head, start: 0, end: p.n }] }
            : {
                stages: [
                  { device: head, start: 0, end: b },
                  { device: tail, start: b, end: p.n },
                ],
              };
      options.push(
        pricedBaseline(p, rc, NAME, `${DESCRIPTION} (${p.devices[head].name} -> ${p.devices[tail].name})`, {
          candidate,
        }),
      );
    }
  }
  if (options.length === 0) {
    options.push(
      pricedBaseline(p, rc, NAME, DESCRIPTION, {
        candidate: { stages: [{ device: head, start: 0, end: p.n }] },
      }),
    );
  }
  return bestOf(options, objective, notApplicable(NAME, DESCRIPTION, "no device linked to the input device"));
}
