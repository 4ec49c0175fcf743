/**
 * Stage files a worker keeps after loading them, by sha256, so a coordinator that deploys a stage this worker
 * ran before (going back to an earlier plan after a failure or a re-partition) ships no bytes: it announces the
 * stage with `cached`, and the worker opens it from here. Bounded by entries and bytes; the least recently used
 * entry goes first. Only a stage without external data is kept (one over protobuf's 2 GB limit is too large to
 * hold twice).
 */
export class StageCache {
  private readonly entries = new Map<string, Uint8Array>();
  private held = 0;

  /**
   * @param maxEntries most stage files kept (default 4)
   * @param maxBytes most bytes kept, all entries together (default 1 GiB); a larger file is not kept
   */
  constructor(
    readonly maxEntries = 4,
    readonly maxBytes = 2 ** 30,
  ) {}

  /** The stage file with this sha256 (hex), marked as just used; undefined when not held. */
  get(sha256: string): Uint8Array | undefined {
    const b = this.entries.get(sha256);
    if (b === undefined) return undefined;
    this.entries.delete(sha256);
    this.entries.set(sha256, b);
    return b;
  }

  /** Keeps a verified stage file under its sha256 (hex), evicting the least recently used beyond the bounds. */
  put(sha256: string, bytes: Uint8Array): void {
    if (bytes.byteLength > this.maxBytes || this.maxEntries < 1) return;
    const old = this.entries.get(sha256);
    if (old !== undefined) {
      this.entries.delete(sha256);
      this.held -= old.byteLength;
    }
    this.entries.set(sha256, bytes);
    this.held += bytes.byteLength;
    for (const [k, v] of this.entries) {
      if (this.entries.size <= this.maxEntries && this.held <= this.maxBytes) break;
      this.entries.delete(k);
      this.held -= v.byteLength;
    }
  }

  /** Entries and bytes held. */
  get size(): { entries: number; bytes: number } {
    return { entries: this.entries.size, bytes: this.held };
  }
}
