import { allowedDevices, type BaselineResult, bestOf, notApplicable, pricedBaseline } from "./baseline.js";
import type { Objective, ResolvedConstraints } from "./constraints.js";
import type { AssignmentCandidate } from "./evaluate.js";
import { FlowNetwork } from "./maxflow.js";
import { linkOf, type PlanProblem, transferCost } from "./problem.js";

const NAME = "dads";
const DESCRIPTION = "min-cut of the graph between the input device and one other device";

/**
 * The DADS split (Hu et al., INFOCOM 2019) of the graph between devices a (holding the input) and b: a
 * minimum s-t cut over the graph's nodes (not just the partition order) that minimises the time on a of the
 * nodes it keeps, plus the time on b of the rest, plus the transfers between them (each tensor paid once
 * however many nodes on b read it, graph inputs from a, graph outputs to the output device). Infinite
 * reverse edges keep the a-side closed under predecessors, so data flows only from a to b. Returns the
 * stage of each position (0 on a, 1 on b) and the devices; one stage when the cut keeps everything on one side.
 */
export function dadsCut(p: PlanProblem, a: number, b: number): AssignmentCandidate {
  const { n } = p;
  const link = linkOf(p, a, b);
  const send = (from: number, to: number, bytes: number): number => {
    if (from === to || bytes <= 0) return 0;
    const l = linkOf(p, from, to);
    return l < 0 ? Number.POSITIVE_INFINITY : transferCost(p, l, bytes).time;
  };
  const S = n;
  const T = n + 1;
  const net = new FlowNetwork(n + 2 + p.tensors.length);
  const lat = (d: number, q: number) => p.prefix[d][q + 1] - p.prefix[d][q];
  // Node on a's side (source side) costs its time on a (edge to the sink is cut), and vice versa.
  const toSink = new Float64Array(n);
  const fromSource = new Float64Array(n);
  for (let q = 0; q < n; q++) {
    toSink[q] = lat(a, q);
    fromSource[q] = lat(b, q);
  }
  p.tensors.forEach((t, i) => {
    const aux = n + 2 + i;
    const crossing = link < 0 ? Number.POSITIVE_INFINITY : transferCost(p, link, t.bytes).time;
    const producer = t.def < 0 ? S : t.def; // graph inputs live on a (the input device)
    if (t.def < 0 && p.inputDevice !== a) return;
    let readers = 0;
    for (const u of t.uses) {
      if (u >= n) continue;
      readers++;
      net.addEdge(aux, u, Number.POSITIVE_INFINITY);
      if (t.def >= 0) net.addEdge(u, t.def, Number.POSITIVE_INFINITY); // closure: a reader on a forces its producer onto a
    }
    if (readers > 0) net.addEdge(producer, aux, crossing);
    if (t.uses[t.uses.length - 1] >= n && t.def >= 0) {
      // A graph output travels from its producer's device to the output device.
      toSink[t.def] += send(a, p.outputDevice, t.bytes);
      fromSource[t.def] += send(b, p.outputDevice, t.bytes);
    }
  });
  for (let q = 0; q < n; q++) {
    net.addEdge(S, q, fromSource[q]);
    net.addEdge(q, T, toSink[q]);
  }
  net.maxFlow(S, T);
  const side = net.sourceSide(S);
  const onA = Array.from({ length: n }, (_, q) => side[q] === 1);
  const countA = onA.filter(Boolean).length;
  if (countA === n) return { stageOf: new Int32Array(n), devices: [a] };
  if (countA === 0) return { stageOf: new Int32Array(n), devices: [b] };
  return { stageOf: Int32Array.from(onA, (x) => (x ? 0 : 1)), devices: [a, b] };
}

/** DADS between the input device and each other allowed, linked device; the best for the objective. */
export function dadsBaseline(p: PlanProblem, rc: ResolvedConstraints, objective: Objective): BaselineResult {
  const a = p.inputDevice;
  if (!rc.allowed[a])
    return notApplicable(NAME, DESCRIPTION, `the input device ${p.devices[a].name} may not run stages`);
  const options: BaselineResult[] = [];
  for (const b of allowedDevices(p, rc)) {
    if (b === a || linkOf(p, a, b) < 0) continue;
    options.push(
      pricedBaseline(p, rc, NAME, `${DESCRIPTION} (${p.devices[a].name} -> ${p.devices[b].name})`, {
        assignment: dadsCut(p, a, b),
      }),
    );
  }
  return bestOf(
    options,
    objective,
    notApplicable(NAME, DESCRIPTION, "needs a second allowed device linked to the input device"),
  );
}
