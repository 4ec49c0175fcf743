import assert from "node:assert/strict";
import { test } from "node:test";
import {
  BANDWIDTH,
  BYTES,
  ENERGY_PER_BIT,
  FREQUENCY,
  POWER,
  THROUGHPUT,
  TIME,
  type UnitKind,
  unitProblem,
} from "../src/cluster/units.js";

const close = (a: number | undefined, b: number) =>
  assert.ok(a !== undefined && Math.abs(a - b) <= 1e-9 * Math.abs(b), `${a} != ${b}`);

const CASES: Array<[UnitKind, string | number, number | undefined]> = [
  [BYTES, "4GiB", 4 * 2 ** 30],
  [BYTES, "512MB", 512e6],
  [BYTES, "64 KiB", 65536],
  [BYTES, "1.5GB", 1.5e9],
  [BYTES, "100B", 100],
  [BYTES, 1024, undefined], // a bare number has no unit
  [BANDWIDTH, 750, undefined],
  [TIME, 0.001, undefined],
  [BYTES, "lots", undefined],
  [BYTES, "4 GQ", undefined],
  [BYTES, "4Gb", undefined], // bits are not bytes
  [BYTES, -1, undefined],
  [BANDWIDTH, "1Gbit/s", 125e6],
  [BANDWIDTH, "100Mbps", 12.5e6],
  [BANDWIDTH, "1 Gb/s", 125e6],
  [BANDWIDTH, "50MB/s", 50e6],
  [BANDWIDTH, "10GiB/s", 10 * 2 ** 30],
  [BANDWIDTH, "125 MBps", 125e6],
  [BANDWIDTH, "1Gbit", undefined],
  [THROUGHPUT, "13.5 GMAC/s", 13.5e9],
  [THROUGHPUT, "13.5 GMACs", 13.5e9],
  [THROUGHPUT, "27 GFLOPS", 13.5e9],
  [THROUGHPUT, "100 TOPS", 50e12],
  [THROUGHPUT, "27 GOP/s", 13.5e9],
  [THROUGHPUT, "1e9", undefined], // a string needs a unit
  [THROUGHPUT, "5 GHz", undefined],
  [TIME, "0.2ms", 2e-4],
  [TIME, "50us", 5e-5],
  [TIME, "50µs", 5e-5],
  [TIME, "1s", 1],
  [TIME, "100ns", 1e-7],
  [TIME, "3 min", undefined],
  [ENERGY_PER_BIT, "5nJ/bit", 5e-9],
  [ENERGY_PER_BIT, "20 pJ/bit", 20e-12],
  [ENERGY_PER_BIT, "5nJ/b", 5e-9],
  [ENERGY_PER_BIT, "5nJ", undefined],
  [POWER, "6.4W", 6.4],
  [POWER, "500mW", 0.5],
  [POWER, "6.4", undefined],
  [FREQUENCY, "200MHz", 200e6],
  [FREQUENCY, "1.5 GHz", 1.5e9],
  [FREQUENCY, "200M", undefined],
];

test("human units parse to SI base units, and non-units are refused", () => {
  for (const [kind, text, want] of CASES) {
    const got = kind.parse(text);
    if (want === undefined) assert.equal(got, undefined, `${kind.what} ${JSON.stringify(text)}`);
    else close(got, want);
  }
});

test("unitProblem says why a value was refused", () => {
  const cases: Array<[UnitKind, unknown, string]> = [
    [BANDWIDTH, 750, ' (a number without a unit: write the unit, like "1Gbit/s")'],
    [BYTES, "512", ' (no unit: write the unit, like "4GiB")'],
    [BYTES, "-3GiB", " (negative: expected a value >= 0)"],
    [BYTES, "-3 GQ", ' (unknown unit "GQ")'],
    [TIME, "3 min", ' (unknown unit "min")'],
    [TIME, "soon", ""],
    [POWER, { watts: 3 }, ""],
  ];
  for (const [kind, value, want] of cases) assert.equal(unitProblem(kind, value), want, String(value));
});
