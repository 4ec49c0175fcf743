#!/usr/bin/env node
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { CleaveError } from "../errors.js";
import type { Command, CliIO } from "./command.js";
import { processIO } from "./command.js";
import { COMMANDS } from "./commands.js";

/** Runs the cleave CLI on argv (without node and script); resolves to the exit code. */
export async function main(argv: string[], io: CliIO = processIO): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    io.out(helpText(COMMANDS));
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "-v") {
    io.out(VERSION);
    return 0;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    io.err(`error: unknown command '${name}' (commands: ${COMMANDS.map((c) => c.name).join(", ")})`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    io.out(cmd.usage);
    return 0;
  }
  try {
    return await cmd.run(rest, io);
  } catch (err) {
    if (err instanceof CleaveError) {
      io.err(`error: ${err.message}`);
      return err.code === "BAD_ARGUMENT" ? 2 : 1;
    }
    throw err;
  }
}

/** cleave's version, sent in worker handshakes. */
export { VERSION } from "../version.js";
import { VERSION } from "../version.js";

function helpText(cmds: readonly Command[]): string {
  const w = Math.max(...cmds.map((c) => c.name.length));
  return [
    "cleave: split DNN inference across heterogeneous devices",
    "",
    "usage: cleave <command> [options]   (cleave <command> --help for its options)",
    "",
    ...cmds.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`),
  ].join("\n");
}

/**
 * True when this file is the program node was started with. An installed `cleave` (npm link, npm install -g,
 * node_modules/.bin) is a symlink to this file, so both sides are compared as real paths.
 */
export function isMainModule(argv1: string | undefined, moduleUrl: string): boolean {
  if (argv1 === undefined) return false;
  try {
    return realpathSync(argv1) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}

if (isMainModule(process.argv[1], import.meta.url)) {
  // A closed pipe (`cleave cuts m.onnx | head`) ends the output, not the program with a stack trace.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(0);
    throw err;
  });
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(
        `internal error (a bug in cleave, please report): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exitCode = 70;
    },
  );
}
