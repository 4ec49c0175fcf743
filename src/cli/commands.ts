import type { Command } from "./command.js";
import { cutsCommand } from "./cmd-cuts.js";
import { inspectCommand } from "./cmd-inspect.js";
import { splitCommand } from "./cmd-split.js";
import { workerCommand } from "./cmd-worker.js";
import { zooCommand } from "./cmd-zoo.js";

/** Every `cleave` subcommand, in the order `cleave --help` lists them. */
export const COMMANDS: readonly Command[] = [
  zooCommand,
  inspectCommand,
  cutsCommand,
  splitCommand,
  workerCommand,
];
