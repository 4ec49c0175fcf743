import { ArgumentError } from "../errors.js";
import { probeWorker } from "../runtime/coordinator/probe.js";
import { bool, type Command, intFlag, onePositional, parseFlags, str } from "./command.js";

const USAGE = `usage: cleave probe HOST:PORT [--token T] [--json] [--mib N] [--transport tcp|ws]

Measures the round-trip time and upload bandwidth from here to a running cleave worker.
  --token      the worker's token (default: $CLEAVE_TOKEN)
  --mib        MiB sent per bandwidth round (default 16; 3 rounds, the best is kept)
  --json       print the result as JSON (link figures in bytes/s and s, as in a cluster file)`;

/** `cleave probe`. */
export const probeCommand: Command = {
  name: "probe",
  summary: "measure bandwidth and round-trip time to a worker",
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags("probe", argv, {
      token: { type: "string" },
      json: { type: "boolean" },
      mib: { type: "string" },
      transport: { type: "string" },
    });
    const endpoint = onePositional("probe", positionals, "worker address HOST:PORT");
    const transport = str(values, "transport") ?? "tcp";
    if (transport !== "tcp" && transport !== "ws")
      throw new ArgumentError(`--transport: expected tcp or ws, got '${transport}'`, { field: "transport" });
    const r = await probeWorker(endpoint, {
      token: str(values, "token") ?? process.env.CLEAVE_TOKEN,
      transport,
      bytes: intFlag("mib", str(values, "mib"), 16) * 2 ** 20,
    });
    if (bool(values, "json")) {
      io.out(JSON.stringify(r));
      return 0;
    }
    io.out(
      `worker ${r.worker} at ${r.endpoint} (cleave ${r.version}): ${r.mibPerSecond.toFixed(1)} MiB/s (${((r.bytesPerSecond * 8) / 1e6).toFixed(0)} Mbit/s), round trip ${r.rttMs.p50.toFixed(3)} ms (min ${r.rttMs.min.toFixed(3)} ms)`,
    );
    return 0;
  },
};
