/**
 * The thread a worker runs one stage on (see stage-runner.ts): it opens the stage's onnxruntime session, runs
 * it for each `run` message in turn and answers with the outputs (their buffers moved, not copied) and the
 * input buffers it was asked to give back. It holds no socket and no state beyond the session.
 */
import { setPriority } from "node:os";
import { isMainThread, parentPort } from "node:worker_threads";
import { errorMessage } from "../../errors.js";
import { createSession, type ort } from "../../onnx/ort.js";
import { cpuMs, type ThreadReply, type ThreadRequest, wireTensor, wireToTensor } from "./stage-wire.js";

/** Nice value of a background stage's thread: CFS gives it ~1.5% of a core another thread wants (19: 15 of 1024). */
const BACKGROUND_NICE = 19;

function lowerPriority(): void {
  try {
    setPriority(0, BACKGROUND_NICE);
  } catch {
    // Where threads cannot be reprioritised the stage runs at the worker's priority, as without the flag.
  }
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  let session: ort.InferenceSession | undefined;
  // Runs one at a time, in the order they came: a stage serves its requests in turn.
  let chain: Promise<void> = Promise.resolve();
  const reply = (m: ThreadReply, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

  const run = async (m: Extract<ThreadRequest, { t: "run" }>) => {
    const feeds = Object.fromEntries(m.feeds.map((w) => [w.name, wireToTensor(w)]));
    const t0 = performance.now();
    const c0 = cpuMs();
    try {
      const out = await session!.run(feeds, m.outputs);
      const ms = performance.now() - t0;
      const cpu = cpuMs() - c0;
      const outputs = m.outputs.map((n) => wireTensor(n, out[n] as ort.Tensor));
      const buffers = [...new Set(outputs.map((w) => w.buffer)), ...m.giveBack];
      reply({ t: "ran", id: m.id, outputs, ms, cpuMs: cpu, giveBack: m.giveBack }, buffers);
    } catch (err) {
      const ms = performance.now() - t0;
      reply(
        {
          t: "run-failed",
          id: m.id,
          message: errorMessage(err),
          ms,
          cpuMs: cpuMs() - c0,
          giveBack: m.giveBack,
        },
        m.giveBack,
      );
    }
  };

  port.on("message", (m: ThreadRequest) => {
    switch (m.t) {
      case "open":
        // Linux schedules threads one by one: this lowers this thread (and the onnxruntime threads it starts)
        // alone, so the worker's I/O thread and its other stages run first.
        if (m.background) lowerPriority();
        createSession(m.model, { threads: m.threads, source: m.file }).then(
          (s) => {
            session = s;
            reply({ t: "opened", inputNames: [...s.inputNames], outputNames: [...s.outputNames] });
          },
          (err) => reply({ t: "open-failed", message: errorMessage(err) }),
        );
        return;
      case "run":
        chain = chain.then(() => run(m));
        return;
      case "close":
        chain = chain.then(async () => {
          await session?.release().catch(() => {});
          port.close();
          process.exit(0);
        });
        return;
    }
  });
}
