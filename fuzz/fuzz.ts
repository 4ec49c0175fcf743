import { parseArgs } from "node:util";
import { fuzz } from "./run.js";

// npm run fuzz [-- --count N --seed S --kind model|frame]: mutated ONNX models through the inspect and split
// paths, and mutated frames through the frame decoder; prints one JSON document; exits 1 on any internal
// error, hang or crash.
const { values } = parseArgs({
  options: {
    count: { type: "string", default: "10000" },
    seed: { type: "string", default: "1" },
    kind: { type: "string" },
    "timeout-ms": { type: "string", default: "10000" },
  },
});
const kinds = values.kind ? [values.kind as "model" | "frame"] : (["model", "frame"] as const);
const reports = [];
for (const kind of kinds) {
  const t0 = performance.now();
  const r = await fuzz({
    kind,
    count: Number(values.count),
    seed: Number(values.seed),
    caseTimeoutMs: Number(values["timeout-ms"]),
  });
  reports.push({ ...r, wallS: (performance.now() - t0) / 1000 });
}
console.log(JSON.stringify({ fuzz: reports }, null, 2));
process.exitCode = reports.some((r) => r.internal.length + r.hangs.length + r.crashes.length > 0) ? 1 : 0;
