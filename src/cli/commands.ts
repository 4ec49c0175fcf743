import type { Command } from "./command.js";
import { benchCommand } from "./cmd-bench.js";
import { cutsCommand } from "./cmd-cuts.js";
import { demoCommand } from "./cmd-demo.js";
import { estimateCommand } from "./cmd-estimate.js";
import { inspectCommand } from "./cmd-inspect.js";
import { planCommand } from "./cmd-plan.js";
import { probeCommand } from "./cmd-probe.js";
import { profileCommand } from "./cmd-profile.js";
import { runCommand } from "./cmd-run.js";
import { serveCommand } from "./cmd-serve.js";
import { reportCommand } from "./cmd-report.js";
import { splitCommand } from "./cmd-split.js";
import { testbedCommand } from "./cmd-testbed.js";
import { workerCommand } from "./cmd-worker.js";
import { zooCommand } from "./cmd-zoo.js";

/** Every `cleave` subcommand, in the order `cleave --help` lists them. */
export const COMMANDS: readonly Command[] = [
  demoCommand,
  zooCommand,
  inspectCommand,
  cutsCommand,
  planCommand,
  splitCommand,
  profileCommand,
  estimateCommand,
  runCommand,
  benchCommand,
  serveCommand,
  reportCommand,
  workerCommand,
  probeCommand,
  testbedCommand,
];
