import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { ConfigMap, Secret, Service } from "kubernetes-models/v1";
import { Deployment, StatefulSet } from "kubernetes-models/apps/v1";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { parseCluster } from "../src/cluster/load.js";

// The fleet files: the Kubernetes manifests validated against the Kubernetes schemas (kubernetes-models
// carries them; nothing is fetched), checked against each other and against cleave's own flags, and the
// Dockerfile's stages and sources.

const root = [join(import.meta.dirname, "..", ".."), join(import.meta.dirname, "..")].find((d) =>
  existsSync(join(d, "package.json")),
)!;
type Doc = { apiVersion: string; kind: string; metadata: { name: string }; [k: string]: unknown };
const docs = parseAllDocuments(readFileSync(join(root, "deploy", "k8s", "cleave.yaml"), "utf8")).map(
  (d) => d.toJS() as Doc,
);
const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  "v1/Secret": Secret,
  "v1/ConfigMap": ConfigMap,
  "v1/Service": Service,
  "apps/v1/StatefulSet": StatefulSet,
  "apps/v1/Deployment": Deployment,
};
const find = (kind: string, name: string) => {
  const d = docs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(d, `no ${kind} ${name}`);
  // biome-ignore lint/suspicious/noExplicitAny: manifests are plain YAML, read field by field and asserted below
  return d as Doc & { spec: any; data: any };
};

function validate(d: Doc): void {
  const Model = MODELS[`${d.apiVersion}/${d.kind}`];
  assert.ok(Model, `${d.apiVersion}/${d.kind} has no schema here`);
  new Model(d as never).validate();
}

test("every manifest validates against its Kubernetes schema, and a broken one does not", () => {
  assert.deepEqual(docs.map((d) => d.kind).sort(), [
    "ConfigMap",
    "Deployment",
    "Secret",
    "Service",
    "Service",
    "StatefulSet",
  ]);
  for (const d of docs) validate(d);
  const broken = structuredClone(find("Deployment", "cleave-serve"));
  broken.spec.replicas = "one";
  delete broken.spec.selector;
  assert.throws(() => validate(broken), /selector|replicas must be integer/);
});

test("the manifests agree: endpoints are the workers' DNS names, probes hit the health endpoints", () => {
  const sts = find("StatefulSet", "cleave-worker");
  const headless = find("Service", sts.spec.serviceName);
  assert.equal(headless.spec.clusterIP, "None");
  assert.deepEqual(headless.spec.selector, sts.spec.template.metadata.labels);
  const cluster = parseCluster(
    parseYaml(find("ConfigMap", "cleave-cluster").data["cluster.yaml"]),
    "configmap",
  );
  const workerArgs: string[] = sts.spec.template.spec.containers[0].args;
  const port = workerArgs[workerArgs.indexOf("--listen") + 1].split(":")[1];
  assert.deepEqual(
    cluster.devices.map((d) => d.endpoint),
    Array.from(
      { length: sts.spec.replicas },
      (_, i) => `${sts.metadata.name}-${i}.${headless.metadata.name}.default.svc.cluster.local:${port}`,
    ),
  );
  for (const d of cluster.devices)
    assert.equal(d.cpus, undefined, `${d.name} must use its endpoint, not a local worker`);
  const serve = find("Deployment", "cleave-serve").spec.template.spec.containers[0];
  const listen = serve.args[serve.args.indexOf("--listen") + 1];
  const servePort = Number(listen.split(":")[1]);
  assert.deepEqual(serve.readinessProbe.httpGet, { path: "/v2/health/ready", port: servePort });
  assert.deepEqual(serve.livenessProbe.httpGet, { path: "/v2/health/live", port: servePort });
  // Both read the token from the Secret's file, never from the command line.
  for (const args of [workerArgs, serve.args as string[]]) {
    assert.ok(!args.includes("--token"));
    assert.equal(args[args.indexOf("--token-file") + 1], "/etc/cleave/token/token");
  }
});

test("the Dockerfile builds in two stages from files that exist", () => {
  const text = readFileSync(join(root, "Dockerfile"), "utf8");
  const lines = text.split("\n").filter((l) => !l.startsWith("#"));
  assert.equal(lines.filter((l) => l.startsWith("FROM ")).length, 2);
  for (const l of lines.filter((x) => x.startsWith("COPY ") && !x.includes("--from="))) {
    const parts = l.split(/\s+/).slice(1, -1);
    for (const p of parts)
      assert.ok(existsSync(join(root, p)), `Dockerfile copies ${p}, which is not in the repository`);
  }
  assert.match(text, /ENTRYPOINT \["node", "dist\/src\/cli\/main\.js"\]/);
});
