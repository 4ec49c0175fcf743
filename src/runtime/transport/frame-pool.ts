/**
 * Receive buffers for large frames, handed back after use and given out again. A worker receives a frame of
 * the same size for every request (the stage's input); allocating a fresh one each time costs the page faults
 * of new memory on the first write and makes V8 collect the external memory it held. Measured on one core
 * with EfficientNet-B0's 588 KiB input: 0.7 ms per request in the copy into fresh buffers and 1.1 ms in the
 * garbage collector, against 5.5 ms of onnxruntime (see docs/ARCHITECTURE.md).
 *
 * Only buffers this pool gave out and that are handed back exactly once are reused: the receiver must not
 * give back a buffer anything still reads (a tensor fed to two stages is `forget`-ed instead).
 */
export class FramePool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private readonly lent = new WeakSet<ArrayBuffer>();
  /** Buffers given out again instead of allocated (for tests and stats). */
  reused = 0;

  /**
   * @param minBytes frames smaller than this are not pooled (default 64 KiB: small buffers are cheap)
   * @param perSize buffers kept per frame size (default 8)
   */
  constructor(
    readonly minBytes = 64 * 1024,
    readonly perSize = 8,
  ) {}

  /** A buffer of exactly `len` bytes: a pooled one of that size when there is one, else a new one. */
  take(len: number): Buffer {
    if (len < this.minBytes) return Buffer.allocUnsafeSlow(len);
    const ab = this.free.get(len)?.pop();
    if (ab) this.reused++;
    const buf = ab ? Buffer.from(ab, 0, len) : Buffer.allocUnsafeSlow(len);
    this.lent.add(buf.buffer as ArrayBuffer);
    return buf;
  }

  /** Hands back the buffer under `view` (any view of it) when this pool lent it; anything else is ignored. */
  give(view: ArrayBufferView): void {
    const ab = view.buffer as ArrayBuffer;
    if (!this.lent.has(ab)) return;
    this.lent.delete(ab);
    let list = this.free.get(ab.byteLength);
    if (!list) {
      list = [];
      this.free.set(ab.byteLength, list);
    }
    if (list.length < this.perSize) list.push(ab);
  }

  /** Whether the buffer under `view` is one this pool lent and would take back. */
  lends(view: ArrayBufferView): boolean {
    return this.lent.has(view.buffer as ArrayBuffer);
  }

  /**
   * Takes a buffer this pool lent that came back as a new ArrayBuffer object (moved to a thread and back,
   * after `forget`): nothing else holds it. Buffers below the pooled size are ignored.
   */
  adopt(ab: ArrayBuffer): void {
    if (ab.byteLength < this.minBytes) return;
    this.lent.add(ab);
    this.give(new Uint8Array(ab));
  }

  /** Never take back the buffer under `view` (something keeps reading it). */
  forget(view: ArrayBufferView): void {
    this.lent.delete(view.buffer as ArrayBuffer);
  }
}
