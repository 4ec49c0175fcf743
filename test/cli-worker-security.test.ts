import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { main } from "../src/cli/main.js";
import { GraphBuilder } from "../src/onnx/builder.js";
import { encodeModel } from "../src/onnx/model-io.js";
import { cliCommand } from "../src/runtime/coordinator/local-cluster.js";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t), isTTY: false }, out, err };
}

/** Runs `f` with CLEAVE_TOKEN unset, so a token in the test's environment cannot hide what is tested. */
async function withoutEnvToken<T>(f: () => Promise<T>): Promise<T> {
  const saved = process.env.CLEAVE_TOKEN;
  delete process.env.CLEAVE_TOKEN;
  try {
    return await f();
  } finally {
    if (saved !== undefined) process.env.CLEAVE_TOKEN = saved;
  }
}

test("a worker refuses a non-loopback address without a token, in one line", async () => {
  const c = capture();
  assert.equal(await withoutEnvToken(() => main(["worker", "--listen", "0.0.0.0:0"], c.io)), 2);
  assert.equal(c.err.length, 1);
  assert.match(
    c.err[0],
    /^error: worker worker: refusing to listen on 0\.0\.0\.0 without a token .*--insecure/,
  );
});

test("TLS flags are checked in one line each", async () => {
  for (const [args, want] of [
    [["--tls", "yes"], /^error: --tls: expected psk, got 'yes'/],
    [["--tls", "psk"], /^error: --tls psk: needs a token/],
    [["--tls-cert", "c.pem"], /^error: --tls-cert and --tls-key go together$/],
    [["--tls-ca", "ca.pem"], /^error: --tls-ca: needs --tls-cert and --tls-key$/],
    [
      ["--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"],
      /^error: --tls-cert: cannot read/,
    ],
  ] as const) {
    const c = capture();
    assert.equal(await withoutEnvToken(() => main(["worker", ...args], c.io)), 2, args.join(" "));
    assert.equal(c.err.length, 1);
    assert.match(c.err[0], want);
  }
});

test("--insecure listens off loopback without a token, warns on stderr and never prints a token", async () => {
  const [cmd, ...rest] = cliCommand();
  const env = { ...process.env };
  delete env.CLEAVE_TOKEN;
  const child = spawn(
    cmd,
    [...rest, "worker", "--listen", "0.0.0.0:0", "--insecure", "--exit-on-stdin-close"],
    {
      env,
    },
  );
  let stderr = "";
  child.stderr.on("data", (b: Buffer) => {
    stderr += b.toString();
  });
  const rl = createInterface({ input: child.stdout });
  const [line] = (await once(rl, "line")) as [string];
  rl.close();
  await new Promise((r) => setTimeout(r, 200));
  child.stdin.end();
  await once(child, "exit");
  assert.match(line, /^cleave worker listening on 0\.0\.0\.0:[1-9]\d*$/);
  assert.match(stderr, /warning: listening on 0\.0\.0\.0:\d+ without a token \(--insecure\)/);
  // With a token given on the command line, nothing the worker prints contains it.
  const secret = "s3cr3t-token-value";
  const c2 = spawn(
    cmd,
    [...rest, "worker", "--listen", "127.0.0.1:0", "--token", secret, "--exit-on-stdin-close"],
    {
      env: { ...env, CLEAVE_DEBUG: "*" },
    },
  );
  let all = "";
  c2.stdout.on("data", (b: Buffer) => {
    all += b.toString();
  });
  c2.stderr.on("data", (b: Buffer) => {
    all += b.toString();
  });
  while (!all.includes("listening on")) await new Promise((r) => setTimeout(r, 50));
  c2.stdin.end();
  await once(c2, "exit");
  assert.ok(!all.includes(secret), "the token was printed");
});

test("cleave run reaches workers started with --tls psk when given --tls psk, and fails in one line without it", async () => {
  const [cmd, ...rest] = cliCommand();
  const dir = mkdtempSync(join(tmpdir(), "cleave-run-tls-"));
  const env = { ...process.env };
  delete env.CLEAVE_TOKEN;
  const token = "run-tls-token";
  const children = ["a", "b"].map((name) =>
    spawn(
      cmd,
      [...rest, "worker", "--name", name, "--token", token, "--tls", "psk", "--exit-on-stdin-close"],
      {
        env,
      },
    ),
  );
  try {
    const endpoints = await Promise.all(
      children.map(async (c) => {
        const rl = createInterface({ input: c.stdout });
        const [line] = (await once(rl, "line")) as [string];
        rl.close();
        return / listening on (\S+)$/.exec(line)![1];
      }),
    );
    const b = new GraphBuilder("tls-run", { seed: 4 });
    const x = b.input("x", "float32", [1, 16]);
    b.output(
      b.node("Relu", [
        b.node("MatMul", [
          b.node("Relu", [b.node("MatMul", [x, b.weight("w1", [16, 16])])]),
          b.weight("w2", [16, 4]),
        ]),
      ]),
    );
    const model = join(dir, "m.onnx");
    writeFileSync(model, encodeModel(b.toModel()));
    const device = (name: string) =>
      `  - {name: ${name}, kind: cpu, throughput: 1 GMAC/s, memoryBandwidth: 1GB/s, memory: 1GiB, idlePower: 1W, activePower: 2W}`;
    const cluster = join(dir, "c.yaml");
    writeFileSync(
      cluster,
      [
        "name: tls",
        "inputDevice: a",
        "outputDevice: b",
        "devices:",
        device("a"),
        device("b"),
        "links:",
        "  - {devices: [a, b], kind: ethernet, bandwidth: 1Gbit/s, latency: 0.1ms, energyPerBit: 1nJ/bit}",
      ].join("\n"),
    );
    const args = [
      "run",
      model,
      "--cluster",
      cluster,
      "--stages",
      "2",
      "--requests",
      "10",
      "--json",
      "--workers",
      `a=${endpoints[0]},b=${endpoints[1]}`,
      "--token",
      token,
    ];
    const ok = await withoutEnvToken(async () => {
      const c = capture();
      return { code: await main([...args, "--tls", "psk"], c.io), c };
    });
    assert.equal(ok.code, 0, ok.c.err.join("\n"));
    const r = JSON.parse(ok.c.out[0]);
    assert.equal(r.report.completed, 10);
    assert.ok(r.maxRelativeDiff <= 1e-6);
    const plain = await withoutEnvToken(async () => {
      const c = capture();
      return { code: await main(args, c.io), c };
    });
    assert.notEqual(plain.code, 0);
    assert.equal(plain.c.err.length, 1, plain.c.err.join("\n"));
    assert.match(plain.c.err[0], /^error: /);
  } finally {
    for (const c of children) c.stdin.end();
    await Promise.all(children.map((c) => once(c, "exit")));
    rmSync(dir, { recursive: true, force: true });
  }
});
