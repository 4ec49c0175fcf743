import type { CliIO } from "./command.js";

/** A one-line progress display on stderr: shown only on a TTY, silent otherwise (and with --json). */
export interface Progress {
  /** Shows a new step (replacing the previous line). */
  step(what: string): void;
  /** Shows a fraction done of the current step, 0..1. */
  fraction(done: number, what?: string): void;
  /** Clears the line. */
  done(): void;
}

/** A progress display for a command; `enabled` false (e.g. --json) makes it silent. */
export function progress(io: CliIO, enabled = true): Progress {
  const on = enabled && io.isTTY && process.stderr.isTTY === true;
  let label = "";
  const draw = (text: string) => {
    if (on) process.stderr.write(`\r\x1b[2K${text}`);
  };
  return {
    step(what) {
      label = what;
      draw(`${what}...`);
    },
    fraction(done, what) {
      const width = 24;
      const filled = Math.round(Math.max(0, Math.min(1, done)) * width);
      draw(
        `${what ?? label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${Math.round(done * 100)}%`,
      );
    },
    done() {
      draw("");
    },
  };
}
