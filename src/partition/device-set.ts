/**
 * Sets of devices for any device count: W 32-bit words per set, bit d of word d >>> 5 for device d. The
 * searches create millions of sets, so they live side by side in one growing Int32Array ({@link DeviceSetPool})
 * and are addressed by offset: a bump allocation and W word copies per set, no object per set. Measured on
 * 2M sets of 8 devices (create one, test subset with the previous): a JS number 0.11 s, this pool 0.25-0.29 s
 * (one or two words), BigInt 0.55-0.62 s, one Uint32Array per set 2.8-5.5 s.
 */

/** Words a set of `devices` devices takes (at least one). */
export function setWords(devices: number): number {
  return Math.max(1, (devices + 31) >>> 5);
}

/** Whether device d is in the set at offset `at` of `words`. */
export function hasDevice(words: Int32Array, at: number, d: number): boolean {
  return ((words[at + (d >>> 5)] >>> (d & 31)) & 1) === 1;
}

/** A set of W words holding the given devices. */
export function deviceSet(devices: Iterable<number>, W: number): Int32Array {
  const s = new Int32Array(W);
  for (const d of devices) s[d >>> 5] |= 1 << (d & 31);
  return s;
}

/** Calls f for every device of the set at offset `at` of `words` (W words), in increasing order. */
export function forEachDevice(words: Int32Array, at: number, W: number, f: (d: number) => void): void {
  for (let w = 0; w < W; w++) {
    for (let m = words[at + w]; m !== 0; m &= m - 1) f((w << 5) + 31 - Math.clz32(m & -m));
  }
}

/** A growing store of device sets of W words each, addressed by offset (a multiple of W). */
export class DeviceSetPool {
  /** The words; replaced when the pool grows, so read it again after {@link DeviceSetPool.add}. */
  words: Int32Array;
  private top = 0;
  constructor(
    readonly W: number,
    capacity = 1024,
  ) {
    this.words = new Int32Array(capacity * W);
  }
  /** A new set: the devices of the set at `from` (none when from < 0) plus device d (none when d < 0). */
  add(from: number, d: number): number {
    const W = this.W;
    if (this.top + W > this.words.length) {
      const grown = new Int32Array(this.words.length * 2);
      grown.set(this.words);
      this.words = grown;
    }
    const at = this.top;
    this.top += W;
    const words = this.words;
    if (from >= 0) for (let w = 0; w < W; w++) words[at + w] = words[from + w];
    if (d >= 0) words[at + (d >>> 5)] |= 1 << (d & 31);
    return at;
  }
}
