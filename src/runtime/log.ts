/**
 * Namespaced debug logging for the runtime, off by default. Turn it on with the environment variable
 * `CLEAVE_DEBUG`: a comma-separated list of namespaces (`runtime:worker,runtime:pipeline`), prefixes ending
 * in `*` (`runtime:*`), or `*` for all. Lines go to stderr; the library never writes to stdout.
 */
export type LogFn = (msg: string) => void;

function enabled(ns: string): boolean {
  const spec = process.env.CLEAVE_DEBUG;
  if (spec === undefined || spec === "") return false;
  return spec.split(",").some((p) => {
    const s = p.trim();
    if (s === "*") return true;
    return s.endsWith("*") ? ns.startsWith(s.slice(0, -1)) : s === ns;
  });
}

/** A logger for a namespace: a no-op unless `CLEAVE_DEBUG` selects it (checked once, at creation). */
export function logger(ns: string): LogFn {
  if (!enabled(ns)) return () => {};
  return (msg) => process.stderr.write(`${new Date().toISOString()} ${ns} ${msg}\n`);
}
