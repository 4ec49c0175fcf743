import { existsSync } from "node:fs";
import { basename, extname } from "node:path";
import { costModelFor } from "../cost/cost-factory.js";
import { ArgumentError } from "../errors.js";
import { type AnalyzedModel, analyzeModel } from "../ir/analyze.js";
import { loadModel } from "../onnx/model-io.js";
import { appendTopK, parsePostprocess, parsePreprocess, prependImagePreprocess } from "../onnx/preprocess.js";
import { withEncodedImageInput } from "../serve/image-input.js";
import { buildZooModel } from "../zoo/index.js";
import { planToAssignment, readPlan, stageDevices } from "../partition/plan.js";
import { makePlan } from "../partition/planner.js";
import { parseEndpoint } from "../runtime/transport/transport.js";
import { ServeMetrics } from "../serve/metrics.js";
import { InferenceServer } from "../serve/server.js";
import { deployForServing } from "../serve/serve-split.js";
import {
  type CliIO,
  type Command,
  intFlag,
  MODEL_INPUT_FLAGS,
  MODEL_INPUT_USAGE,
  modelInputs,
  onePositional,
  parseFlags,
  planInputs,
  str,
} from "./command.js";
import { clusterForPlan } from "./cluster-flag.js";
import { splitFromFlags } from "./cmd-run.js";
import { modelForPlan } from "../partition/plan-parallel.js";
import { loadForCli } from "./load.js";
import { withLocalProfiles } from "./local-profiles.js";
import {
  encodingLines,
  FIDELITY_FLAGS,
  FIDELITY_USAGE,
  fidelityFromFlags,
  planUnderBudget,
} from "./fidelity-flags.js";
import type { TensorEncoding } from "../onnx/encoding.js";
import type { Plan } from "../partition/plan.js";
import { checkWorkerNames, clusterEndpointWorkers, remoteWorkers, WORKER_FLAGS } from "./testbed-flag.js";

const USAGE = `usage: cleave serve <model.onnx | zoo:NAME> [--plan plan.json | --stages k | --cuts a,b]
                    [--cluster c.yaml] [--workers name=host:port,... --token-file F]
                    [--listen HOST:PORT] [--name N] [--queue N] [--in-flight K] [--timeout MS]
                    [--heartbeat-ms MS] [--fidelity top1=0.99 | --max-rel-error X ...]
                    [--preprocess image:HxW,...] [--postprocess topk=K] [model input flags]

Deploys a split and serves it with the Open Inference Protocol (KServe v2) over HTTP/REST until SIGINT or
SIGTERM: GET /v2/health/live, /v2/health/ready, /v2, /v2/models/NAME, POST /v2/models/NAME/infer (JSON or
binary tensor data), and Prometheus metrics on GET /metrics. Prints one line with the URL it listens on.
Without --plan, --stages or --cuts it plans the model on the cluster for throughput first (under the
fidelity budget when one is given). A plan with encoded cut tensors is served as planned: the stages
encode and decode them (a graph input sent encoded gets a stage of its own on the input device), and the
encodings and the plan's held-out fidelity are printed at startup. Devices with
'cpus' get a local worker; devices with 'endpoint' in the cluster file, or named in --workers, use the
running worker there. A lost worker makes it not ready until it has restarted its local workers and
deployed again; requests that met the fault run again. On SIGINT/SIGTERM it stops accepting, answers the
requests in flight, undeploys, stops the workers it started and exits 0.
  --plan       a plan from 'cleave plan' (stages and their devices)
  --stages/--cuts  split without a plan, as in 'cleave run'
  --cluster    cluster file or built-in name (default: the plan's cluster, else local)
  --workers    running workers by device name (name=host:port,...); --token-file (or --token) their
               token (default: $CLEAVE_TOKEN)
  --listen     address to listen on (default 127.0.0.1:8000; port 0 picks a free one)
  --name       model name in the URLs (default: the file name without extension, NAME for zoo:NAME)
  --queue      requests admitted beyond those in flight; more get HTTP 429 at once (default 64)
  --in-flight  requests in the pipeline at once (default 2 per stage)
  --timeout    deadline of a request that sets none, ms (default 30000); a request sets its own with the
               Inference-Timeout-Ms header or its 'timeout' parameter (microseconds)
  --heartbeat-ms  a worker silent this long (beyond a stage run it announced) is lost (default 1000)
  --preprocess image:HxW[,mean=a/b/c][,std=a/b/c][,layout=nchw|nhwc]  prepend Cast, Div 255, Sub mean,
               Div std (and Transpose for nchw) to the model as ONNX layers, planned and placed like any
               other; the model then takes 'image', one JPEG or PNG as BYTES [1], decoded and resized
               here with sharp (not with --plan)
  --postprocess topk=K  append a TopK to the model's output: it returns <output>_topk_values and
               <output>_topk_indices, K each, instead of the whole output (not with --plan)

Planning under a fidelity budget (without --plan, --stages or --cuts):
${FIDELITY_USAGE}

Model input flags:
${MODEL_INPUT_USAGE}`;

/** The model name `serve` uses for a model path: the file name without extension, or NAME for `zoo:NAME`. */
export function servedModelName(path: string): string {
  if (path.startsWith("zoo:")) return path.slice(4);
  const file = basename(path);
  return file.slice(0, file.length - extname(file).length);
}

/** `cleave serve`. */
export const serveCommand: Command = {
  name: "serve",
  summary: "deploy a split and serve it over HTTP with the Open Inference Protocol (KServe v2)",
  usage: USAGE,
  async run(argv, io: CliIO) {
    const { values, positionals } = parseFlags("serve", argv, {
      plan: { type: "string" },
      stages: { type: "string" },
      cuts: { type: "string", multiple: true },
      cluster: { type: "string" },
      ...WORKER_FLAGS,
      listen: { type: "string" },
      name: { type: "string" },
      queue: { type: "string" },
      "in-flight": { type: "string" },
      timeout: { type: "string" },
      "heartbeat-ms": { type: "string" },
      preprocess: { type: "string" },
      postprocess: { type: "string" },
      ...MODEL_INPUT_FLAGS,
      ...FIDELITY_FLAGS,
    });
    const fidelity = fidelityFromFlags(values);
    const path = onePositional("serve", positionals, "model file");
    let host: string;
    let port: number;
    try {
      ({ host, port } = parseEndpoint(str(values, "listen") ?? "127.0.0.1:8000"));
    } catch (err) {
      throw new ArgumentError(`--listen: ${(err as Error).message}`, { field: "listen" });
    }
    const name = str(values, "name") ?? servedModelName(path);
    if (!/^[\w.-]+$/.test(name))
      throw new ArgumentError(`--name: '${name}' is not a model name (letters, digits, '_', '.', '-')`, {
        field: "name",
      });
    const queue = intFlag("queue", str(values, "queue"), 64, 0);
    const timeoutMs = intFlag("timeout", str(values, "timeout"), 30000);
    const heartbeatMs = intFlag("heartbeat-ms", str(values, "heartbeat-ms"), 1000);
    const planPath = str(values, "plan");
    const plan = planPath === undefined ? undefined : readPlan(planPath);
    const cluster = clusterForPlan(str(values, "cluster"), plan, planPath);
    const remote = remoteWorkers(values, undefined, cluster);
    const fromPlan = plan === undefined ? {} : planInputs(plan, planPath);
    const inputs = modelInputs(values, fromPlan);
    const pre = str(values, "preprocess");
    const preprocess = pre === undefined ? undefined : parsePreprocess(pre);
    const post = str(values, "postprocess");
    const postprocess = post === undefined ? undefined : parsePostprocess(post);
    if ((preprocess || postprocess) && plan)
      throw new ArgumentError(
        "--preprocess/--postprocess add layers to the graph, which a plan made without them does not describe: drop --plan (serve plans itself) or give --stages/--cuts",
        { field: preprocess ? "preprocess" : "postprocess" },
      );
    if (fidelity && (plan || values.stages !== undefined || values.cuts !== undefined))
      throw new ArgumentError(
        `--fidelity/--max-rel-error: a budget is planned for, and ${plan ? "--plan" : values.stages !== undefined ? "--stages" : "--cuts"} gives the split already: drop one (a plan made with --fidelity carries its encodings)`,
        { field: "fidelity" },
      );
    let model: AnalyzedModel;
    if (preprocess || postprocess) {
      const proto =
        path.startsWith("zoo:") && !existsSync(path) ? buildZooModel(path.slice(4)) : loadModel(path);
      if (preprocess) prependImagePreprocess(proto, preprocess);
      if (postprocess) appendTopK(proto, postprocess);
      model = await analyzeModel(proto, { ...inputs, source: path });
    } else model = await modelForPlan(await loadForCli(path, inputs, io), plan ?? {});
    let split: ReturnType<typeof splitFromFlags>;
    let predicted: number | undefined = plan?.totals.throughput;
    let servedPlan: Plan | undefined = plan;
    if (plan === undefined && values.stages === undefined && values.cuts === undefined) {
      const cost = costModelFor(model, cluster, {
        profiles: await withLocalProfiles(model, cluster, {}, io),
        inputShapes: inputs.inputShapes,
      });
      const planned = fidelity
        ? (
            await planUnderBudget(
              model,
              cluster,
              cost,
              fidelity,
              { objective: "throughput", modelPath: path },
              (s) => io.err(`cleave serve: ${s}`),
            )
          ).plan.plan
        : makePlan({ model, modelPath: path, ...inputs, cluster, cost, objective: "throughput" }).plan;
      servedPlan = planned;
      io.err(
        `cleave serve: planned ${planned.stages.length} stage(s) on ${planned.stages.map((s) => stageDevices(s).join("+")).join(" > ")}, predicted ${planned.totals.throughput.toFixed(1)}/s`,
      );
      predicted = planned.totals.throughput;
      split = {
        assignment: planToAssignment(model, planned),
        devices: planned.stages.map(stageDevices),
        weights: (stage, device) => planned.stages[stage]?.replicas?.find((r) => r.device === device)?.share,
      };
    } else split = splitFromFlags(model, values, cluster);
    const workers = clusterEndpointWorkers(cluster, split.devices.flat(), remote.workers);
    checkWorkerNames(
      remote.workers,
      split.devices.flat(),
      planPath ?? `the split over cluster ${cluster.name}`,
      workers.fromCluster,
    );
    const inFlight =
      values["in-flight"] === undefined ? undefined : intFlag("in-flight", str(values, "in-flight"), 2);
    const served = await deployForServing(model, split.assignment, split.devices, cluster, name, {
      workers: workers.workers,
      token: remote.token,
      ...(remote.tls ? { tls: remote.tls } : {}),
      inFlight,
      modelPath: path,
      predictedThroughput: predicted,
      replicaWeights: split.weights,
      ...(servedPlan?.encodings ? { encodings: servedPlan.encodings.tensors as TensorEncoding[] } : {}),
      heartbeatMs,
    });
    for (const line of servedPlan?.encodings ? encodingLines(servedPlan.encodings) : [])
      io.err(`cleave serve: ${line}`);
    const metrics = new ServeMetrics();
    const server = new InferenceServer(preprocess ? withEncodedImageInput(served, preprocess) : served, {
      host,
      port,
      maxAdmitted: served.inFlight + queue,
      timeoutMs,
      metrics,
    });
    metrics.attach(served, () => server.admitted);
    let addr: Awaited<ReturnType<InferenceServer["start"]>>;
    try {
      addr = await server.start();
    } catch (err) {
      await served.close();
      throw new ArgumentError(`--listen ${host}:${port}: ${(err as Error).message}`, { field: "listen" });
    }
    io.out(
      `cleave serve: model '${name}' (${served.devices.map((g, i) => `${g.join("+")}${i === 0 && served.encoderStage ? " [encoder]" : ""}`).join(" > ")}) on ${addr.url}/v2/models/${name}`,
    );
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    await server.stop();
    await served.close();
    return 0;
  },
};
