/**
 * The thread a worker runs one stage on (see stage-runner.ts): it opens the stage's onnxruntime session, runs
 * it for each `run` message in turn and answers with the outputs (their buffers moved, not copied) and the
 * input buffers it was asked to give back. It holds no socket and no state beyond the session.
 */
import { isMainThread, parentPort } from "node:worker_threads";
import { errorMessage } from "../../errors.js";
import { createSession, type ort } from "../../onnx/ort.js";
import { cpuMs, type ThreadReply, type ThreadRequest, wireTensor, wireToTensor } from "./stage-wire.js";

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
