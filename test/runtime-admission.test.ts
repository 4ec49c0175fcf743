import assert from "node:assert/strict";
import { test } from "node:test";
import { Admission } from "../src/runtime/transport/admission.js";
import type { Connection } from "../src/runtime/transport/transport.js";

/** Just what Admission touches of a connection: its address and close(), which calls back like a real one. */
function fake(remote: string, onClose: (c: Connection) => void) {
  const c = {
    remote,
    closedByWorker: false,
    close() {
      if (c.closedByWorker) return;
      c.closedByWorker = true;
      onClose(c as unknown as Connection);
    },
  };
  return c;
}

const quiet = () => {};

test("pending connections: one beyond an address's share evicts that address's oldest, not anyone else's", () => {
  const a = new Admission({ maxPending: 6, maxPendingPerAddress: 3, handshakeTimeoutMs: 60_000 });
  const mk = (remote: string) => {
    const c = fake(remote, (x) => a.closed(x));
    assert.equal(a.arrive(c as unknown as Connection, quiet), true);
    return c;
  };
  const real = mk("10.0.0.1:5000");
  const flood = Array.from({ length: 10 }, (_, i) => mk(`10.0.0.9:${6000 + i}`));
  // The flood keeps its own 3 newest; the real client is untouched.
  assert.equal(real.closedByWorker, false);
  assert.deepEqual(
    flood.map((c) => c.closedByWorker),
    [true, true, true, true, true, true, true, false, false, false],
  );
  assert.deepEqual(a.counts, { pending: 4, total: 4 });
  // Many addresses: past the global cap the address with the most pending loses its oldest.
  const others = ["10.0.0.2:1", "10.0.0.3:1", "10.0.0.4:1"].map(mk);
  assert.equal(flood[7].closedByWorker, true);
  assert.equal(real.closedByWorker, false);
  assert.ok(others.every((c) => !c.closedByWorker));
  // Authenticated connections leave the pending count but stay in the total.
  a.authenticated(real as unknown as Connection);
  assert.deepEqual(a.counts, { pending: 5, total: 6 });
});

test("the total cap refuses a connection beyond it; the handshake deadline closes an idle one", async () => {
  const a = new Admission({ maxConnections: 2, handshakeTimeoutMs: 50 });
  const conns = Array.from({ length: 3 }, (_, i) => fake(`10.0.0.${i}:1`, (x) => a.closed(x)));
  assert.deepEqual(
    conns.map((c) => a.arrive(c as unknown as Connection, quiet)),
    [true, true, false],
  );
  assert.equal(conns[2].closedByWorker, true);
  a.authenticated(conns[0] as unknown as Connection);
  await new Promise((r) => setTimeout(r, 120));
  assert.deepEqual(
    conns.map((c) => c.closedByWorker),
    [false, true, true],
  );
  assert.equal(a.refused.timedOut, 1);
  assert.deepEqual(a.counts, { pending: 0, total: 1 });
});

test("wrong tokens back an address off, doubling up to the maximum; other addresses are not affected", async () => {
  const a = new Admission({ backoff: { baseMs: 40, maxMs: 100, forgetMs: 10_000 } });
  const bad = fake("10.0.0.9:1", quiet) as unknown as Connection;
  const good = fake("10.0.0.1:1", quiet) as unknown as Connection;
  assert.equal(a.mayTry(bad).ok, true);
  a.wrongToken(bad);
  const r = a.mayTry(bad);
  assert.equal(r.ok, false);
  assert.match(r.ok ? "" : r.message, /^1 wrong tokens from this address; retry in \d+ ms$/);
  assert.equal(a.mayTry(good).ok, true);
  await new Promise((res) => setTimeout(res, 50));
  assert.equal(a.mayTry(bad).ok, true, "40 ms after the first failure");
  a.wrongToken(bad);
  await new Promise((res) => setTimeout(res, 50));
  assert.equal(a.mayTry(bad).ok, false, "the second failure backs off 80 ms");
  a.wrongToken(bad);
  a.wrongToken(bad);
  await new Promise((res) => setTimeout(res, 110));
  assert.equal(a.mayTry(bad).ok, true, "capped at 100 ms");
});
