import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { PipelineStats } from "../runtime/coordinator/pipeline.js";
import type { StatsReplyMsg } from "../runtime/transport/protocol.js";

/** How a served request ended, as the `outcome` label of the request metrics. */
export type RequestOutcome = "ok" | "bad_request" | "queue_full" | "timeout" | "unavailable" | "error";

/** What the serve metrics read from the deployment at each scrape. */
export interface MetricsSource {
  /** The pipeline's counters (bytes to and from the workers, requests waiting for a slot). */
  pipelineStats(): PipelineStats;
  /** Every worker's stage counters (cumulative since deploy). */
  workerStats(): Promise<StatsReplyMsg[]>;
  /** The running plan's predicted throughput, inferences/s (undefined: no prediction). */
  predictedThroughput?: number;
  /** Recoveries from worker faults so far. */
  recoveries?: () => number;
}

/** Seconds of the sliding window the measured throughput is taken over. */
const WINDOW_S = 10;

/**
 * Prometheus metrics of `cleave serve`, in a registry of their own (never the global one): request latency
 * histogram and counts by outcome, requests admitted and waiting, per-stage runs, errors and onnxruntime
 * seconds (read from the workers at scrape), bytes between the coordinator and the workers, and the running
 * plan's predicted against measured throughput (completions over the last 10 s).
 */
export class ServeMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<"outcome">;
  private readonly latency: Histogram<"outcome">;
  private readonly stageRuns: Counter<"worker" | "stage">;
  private readonly stageErrors: Counter<"worker" | "stage">;
  private readonly stageSeconds: Counter<"worker" | "stage">;
  private readonly last = new Map<string, { runs: number; errors: number; computeMs: number }>();
  private readonly done: number[] = [];
  private source?: MetricsSource;
  private admitted: () => number = () => 0;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: "cleave_serve_requests_total",
      help: "Inference requests answered, by outcome",
      labelNames: ["outcome"],
      registers,
    });
    this.latency = new Histogram({
      name: "cleave_serve_request_duration_seconds",
      help: "Time from receiving an inference request to sending its answer, seconds",
      labelNames: ["outcome"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    const self = this;
    new Gauge({
      name: "cleave_serve_admitted_requests",
      help: "Inference requests admitted now (in the pipeline or waiting for a slot)",
      registers,
      collect() {
        this.set(self.admitted());
      },
    });
    new Gauge({
      name: "cleave_serve_queue_depth",
      help: "Admitted requests waiting for a pipeline slot",
      registers,
      collect() {
        this.set(self.source?.pipelineStats().waiting ?? 0);
      },
    });
    new Gauge({
      name: "cleave_pipeline_in_flight",
      help: "Requests in the pipeline now",
      registers,
      collect() {
        this.set(self.source?.pipelineStats().inFlight ?? 0);
      },
    });
    new Gauge({
      name: "cleave_link_bytes",
      help: "Frame bytes between the coordinator and the workers since deploy, by direction",
      labelNames: ["direction"],
      registers,
      collect() {
        const s = self.source?.pipelineStats();
        this.set({ direction: "sent" }, s?.bytesSent ?? 0);
        this.set({ direction: "received" }, s?.bytesReceived ?? 0);
      },
    });
    new Gauge({
      name: "cleave_serve_recoveries",
      help: "Times the deployment recovered from a worker fault (workers restarted, stages deployed again)",
      registers,
      collect() {
        this.set(self.source?.recoveries?.() ?? 0);
      },
    });
    new Gauge({
      name: "cleave_plan_predicted_throughput",
      help: "The running plan's predicted throughput, inferences/s",
      registers,
      collect() {
        const p = self.source?.predictedThroughput;
        if (p !== undefined) this.set(p);
      },
    });
    new Gauge({
      name: "cleave_measured_throughput",
      help: `Inferences completed per second over the last ${WINDOW_S} s`,
      registers,
      collect() {
        self.trim(performance.now());
        this.set(self.done.length / WINDOW_S);
      },
    });
    this.stageRuns = new Counter({
      name: "cleave_stage_runs_total",
      help: "Requests each stage ran to completion",
      labelNames: ["worker", "stage"],
      registers,
    });
    this.stageErrors = new Counter({
      name: "cleave_stage_errors_total",
      help: "Requests that failed in each stage",
      labelNames: ["worker", "stage"],
      registers,
    });
    this.stageSeconds = new Counter({
      name: "cleave_stage_compute_seconds_total",
      help: "Time each stage spent inside onnxruntime, seconds",
      labelNames: ["worker", "stage"],
      registers,
    });
  }

  /** Reads the deployment at each scrape from `source`; `admitted` counts the requests admitted now. */
  attach(source: MetricsSource, admitted: () => number): void {
    this.source = source;
    this.admitted = admitted;
  }

  /** Counts one answered request and its latency, seconds. */
  observe(outcome: RequestOutcome, seconds: number): void {
    this.requests.inc({ outcome });
    this.latency.observe({ outcome }, seconds);
    if (outcome === "ok") {
      const now = performance.now();
      this.done.push(now);
      if (this.done.length > 4096) this.trim(now);
    }
  }

  private trim(now: number): void {
    const cut = now - WINDOW_S * 1000;
    let k = 0;
    while (k < this.done.length && this.done[k] < cut) k++;
    if (k > 0) this.done.splice(0, k);
  }

  /** The metrics in Prometheus text format; the workers' stage counters are read first (a stats round trip). */
  async text(): Promise<string> {
    if (this.source) {
      // A worker that does not answer leaves the stage counters where they were; the scrape still answers.
      const stats = await this.source.workerStats().catch(() => [] as StatsReplyMsg[]);
      for (const w of stats)
        for (const s of w.stages) {
          const labels = { worker: w.worker, stage: String(s.stage) };
          const key = `${w.worker}/${s.stage}`;
          const before = this.last.get(key) ?? { runs: 0, errors: 0, computeMs: 0 };
          this.stageRuns.inc(labels, Math.max(0, s.runs - before.runs));
          this.stageErrors.inc(labels, Math.max(0, s.errors - before.errors));
          this.stageSeconds.inc(labels, Math.max(0, (s.computeMs - before.computeMs) / 1000));
          this.last.set(key, { runs: s.runs, errors: s.errors, computeMs: s.computeMs });
        }
    }
    return this.registry.metrics();
  }

  /** Content type of {@link text}. */
  get contentType(): string {
    return this.registry.contentType;
  }
}

/**
 * Prometheus metrics of one `cleave worker`, in a registry of their own: per-stage runs, errors, onnxruntime
 * seconds and pending requests, the process's CPU seconds and reused receive buffers, read from `stats` at
 * each scrape.
 */
export function workerMetricsRegistry(stats: () => StatsReplyMsg): Registry {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });
  const perStage = (name: string, help: string, value: (s: StatsReplyMsg["stages"][number]) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ["worker", "stage"],
      registers,
      collect() {
        this.reset();
        const r = stats();
        for (const s of r.stages) this.set({ worker: r.worker, stage: String(s.stage) }, value(s));
      },
    });
  perStage("cleave_worker_stage_runs", "Requests each stage of this worker ran since deploy", (s) => s.runs);
  perStage("cleave_worker_stage_errors", "Requests that failed in each stage since deploy", (s) => s.errors);
  perStage(
    "cleave_worker_stage_compute_seconds",
    "Time each stage spent inside onnxruntime since deploy, seconds",
    (s) => s.computeMs / 1000,
  );
  perStage(
    "cleave_worker_stage_pending",
    "Requests whose inputs are waiting in each stage",
    (s) => s.pending,
  );
  new Gauge({
    name: "cleave_worker_receive_buffers_reused",
    help: "Large frames received into a buffer handed back by an earlier request",
    registers,
    collect() {
      this.set(stats().receiveBuffersReused);
    },
  });
  return registry;
}
