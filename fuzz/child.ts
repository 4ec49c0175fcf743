import { type CaseKind, frameCase, modelCase, runCase } from "./cases.js";

// Runs cases [start, end) of one kind and seed, telling the parent when each starts and how it ended, so
// the parent can time each case, kill this process on a hang and go on after it.
const [kind, seed, start, end] = [process.argv[2] as CaseKind, ...process.argv.slice(3, 6).map(Number)];
const send = (m: unknown) => new Promise<void>((ok) => process.send!(m, () => ok()));
for (let i = start; i < end; i++) {
  await send({ t: "start", i });
  const bytes = kind === "model" ? modelCase(seed, i) : frameCase(seed, i);
  await send({ t: "done", i, outcome: await runCase(kind, bytes) });
}
process.disconnect();
