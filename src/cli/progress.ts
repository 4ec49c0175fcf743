import type { CliIO } from "./command.js";

/**
 * Progress of a long command on stderr: a bar redrawn in place on a terminal; elsewhere (piped, CI) a plain
 * line at most every {@link LINE_INTERVAL_MS} ms, and one every interval while a step runs long, so a log shows
 * the command is alive. Commands shorter than an interval print no line.
 */
export interface Progress {
  /** Shows a new step (replacing the previous line). */
  step(what: string): void;
  /** Shows a fraction done of the current step, 0..1. */
  fraction(done: number, what?: string): void;
  /** Clears the line (a terminal) or stops the periodic lines until the next step. */
  done(): void;
}

/** Time between two progress lines when stderr is not a terminal, ms. */
export const LINE_INTERVAL_MS = 3000;

/**
 * A progress display for a command. When stderr is a terminal it draws a bar there, unless `enabled` is
 * false (--json); off a terminal it writes lines with `io.err` whatever `enabled` says, since they go to
 * stderr and leave stdout to the results.
 */
export function progress(io: CliIO, enabled = true, intervalMs = LINE_INTERVAL_MS): Progress {
  const tty = process.stderr.isTTY === true;
  const bar = enabled && tty;
  const lines = !tty;
  let label = "";
  let frac: number | undefined;
  let since = performance.now();
  let last = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const draw = (text: string) => {
    if (bar) process.stderr.write(`\r\x1b[2K${text}`);
  };
  const line = () => {
    last = performance.now();
    const pct = frac !== undefined ? ` ${Math.round(frac * 100)}%` : "";
    const secs = Math.round((last - since) / 1000);
    io.err(`cleave: ${label}${pct}${secs >= 1 ? ` (${secs} s)` : ""}`);
  };
  const tick = () => {
    if (!lines || label === "") return;
    if (performance.now() - last >= intervalMs) line();
    // Also while one step runs long: the timer does not keep the process alive.
    timer ??= setInterval(() => {
      if (performance.now() - last >= intervalMs) line();
    }, intervalMs);
    timer.unref();
  };
  return {
    step(what) {
      if (what !== label) since = performance.now();
      label = what;
      frac = undefined;
      draw(`${what}...`);
      tick();
    },
    fraction(done, what) {
      const width = 24;
      const filled = Math.round(Math.max(0, Math.min(1, done)) * width);
      if (what !== undefined && what !== label) {
        label = what;
        since = performance.now();
      }
      frac = Math.max(0, Math.min(1, done));
      draw(
        `${what ?? label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${Math.round(done * 100)}%`,
      );
      tick();
    },
    done() {
      draw("");
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      label = "";
    },
  };
}
