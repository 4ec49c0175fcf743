/**
 * Admission for a server in front of a pipeline: at most `capacity` requests are admitted at once (those in
 * the pipeline's flight plus those waiting for a slot); one more is refused at once rather than queued, so a
 * burst never builds an unbounded backlog and a client learns within a round trip that it should retry.
 */
export class AdmissionQueue {
  private active = 0;
  private refusedCount = 0;

  /** @param capacity most requests admitted at once (>= 1) */
  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1)
      throw new RangeError(`admission capacity must be a whole number >= 1, got ${capacity}`);
  }

  /** Admits one request (true) or refuses it because `capacity` are admitted already (false). */
  tryEnter(): boolean {
    if (this.active >= this.capacity) {
      this.refusedCount++;
      return false;
    }
    this.active++;
    return true;
  }

  /** Ends an admitted request. */
  leave(): void {
    if (this.active > 0) this.active--;
  }

  /** Requests admitted now. */
  get admitted(): number {
    return this.active;
  }

  /** Requests refused so far. */
  get refused(): number {
    return this.refusedCount;
  }
}
