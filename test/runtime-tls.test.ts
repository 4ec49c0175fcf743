import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { randomTensor } from "../src/onnx/ort.js";
import { deploy } from "../src/runtime/coordinator/deploy.js";
import { connectWorker } from "../src/runtime/transport/handshake.js";
import type { TlsConfig } from "../src/runtime/transport/transport.js";
import { TcpTransport } from "../src/runtime/transport/transport-tcp.js";
import { Worker } from "../src/runtime/worker/worker.js";
import { branchySpec, type Fixture, writeFixture } from "./runtime-fixture.js";

let fx: Fixture;
let certDir: string | undefined;
const workers: Worker[] = [];

/** A self-signed certificate for 127.0.0.1 (its own CA), made with openssl; undefined without openssl. */
function selfSigned(dir: string, name: string): { cert: Buffer; key: Buffer } | undefined {
  try {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        `/CN=${name}`,
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        join(dir, `${name}.key`),
        "-out",
        join(dir, `${name}.pem`),
      ],
      { stdio: "ignore" },
    );
  } catch {
    return undefined;
  }
  return { cert: readFileSync(join(dir, `${name}.pem`)), key: readFileSync(join(dir, `${name}.key`)) };
}

async function startWorkers(names: string[], token: string, tls: TlsConfig): Promise<string[]> {
  const out: string[] = [];
  for (const name of names) {
    const w = new Worker({ name, token, tls });
    workers.push(w);
    const a = await w.start();
    out.push(`${a.host}:${a.port}`);
  }
  return out;
}

before(() => {
  fx = writeFixture(branchySpec(32));
  certDir = mkdtempSync(join(tmpdir(), "cleave-tls-"));
});

after(async () => {
  for (const w of workers) await w.stop();
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

test("TLS-PSK: a pipeline runs over TLS keyed by the token; plain TCP and another key are refused", async () => {
  const tls: TlsConfig = { mode: "psk", token: "k1" };
  const eps = await startWorkers(["a", "b", "c"], "k1", tls);
  const list = eps.map((endpoint, i) => ({ name: ["a", "b", "c"][i], endpoint }));
  const p = await deploy(fx.dir, list, { token: "k1", tls });
  const out = await p.infer({ x: randomTensor("float32", [1, 32]) });
  assert.deepEqual(out.y.dims, [1, 8]);
  await p.close();
  await assert.rejects(
    connectWorker(new TcpTransport(), eps[0], { token: "k1", role: "probe", from: "plain", timeoutMs: 3000 }),
    { name: "RuntimeFault" },
  );
  await assert.rejects(
    connectWorker(new TcpTransport({ tls: { mode: "psk", token: "k2" } }), eps[0], {
      token: "k2",
      role: "probe",
      from: "other",
      timeoutMs: 3000,
    }),
    { name: "RuntimeFault" },
  );
});

test("TLS with certificates, mutual: a client without a certificate the worker trusts is refused", async (t) => {
  const dir = certDir!;
  const server = selfSigned(dir, "worker");
  const client = selfSigned(dir, "client");
  if (!server || !client) {
    t.skip("no openssl to make certificates");
    return;
  }
  // Every worker presents `server` and trusts both certificates (it dials other workers as a client too).
  const ca = Buffer.concat([server.cert, client.cert]);
  const eps = await startWorkers(["d", "e", "f"], "k3", { mode: "cert", ...server, ca });
  const list = eps.map((endpoint, i) => ({ name: ["d", "e", "f"][i], endpoint }));
  const p = await deploy(fx.dir, list, { token: "k3", tls: { mode: "cert", ...client, ca: server.cert } });
  const out = await p.infer({ x: randomTensor("float32", [1, 32]) });
  assert.deepEqual(out.y.dims, [1, 8]);
  await p.close();
  // A certificate the worker does not trust (another self-signed one) is refused by TLS itself.
  const stranger = selfSigned(dir, "stranger")!;
  await assert.rejects(
    connectWorker(new TcpTransport({ tls: { mode: "cert", ...stranger, ca: server.cert } }), eps[0], {
      token: "k3",
      role: "probe",
      from: "stranger",
      timeoutMs: 3000,
    }),
    { name: "RuntimeFault" },
  );
});
