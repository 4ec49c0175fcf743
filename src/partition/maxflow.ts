/**
 * Maximum flow / minimum s-t cut on a graph with real capacities (Dinic's algorithm: BFS levels, DFS
 * blocking flows). Capacities may be Infinity (edges that must never be cut).
 */
export class FlowNetwork {
  private readonly head: number[];
  private readonly to: number[] = [];
  private readonly cap: number[] = [];
  private readonly next: number[] = [];

  constructor(readonly size: number) {
    this.head = new Array<number>(size).fill(-1);
  }

  /** Adds a directed edge u -> v with capacity `c` (>= 0) and its residual twin. */
  addEdge(u: number, v: number, c: number): void {
    if (!(c >= 0)) throw new RangeError(`capacity must be >= 0, got ${c}`);
    for (const [a, b, k] of [
      [u, v, c],
      [v, u, 0],
    ] as const) {
      this.to.push(b);
      this.cap.push(k);
      this.next.push(this.head[a]);
      this.head[a] = this.to.length - 1;
    }
  }

  /** Pushes the maximum flow from s to t; returns its value (Infinity when an uncuttable path exists). */
  maxFlow(s: number, t: number): number {
    let flow = 0;
    const level = new Int32Array(this.size);
    const it = new Int32Array(this.size);
    const eps = 1e-15;
    const bfs = (): boolean => {
      level.fill(-1);
      level[s] = 0;
      const queue = [s];
      for (let qi = 0; qi < queue.length; qi++) {
        const u = queue[qi];
        for (let e = this.head[u]; e >= 0; e = this.next[e]) {
          if (this.cap[e] > eps && level[this.to[e]] < 0) {
            level[this.to[e]] = level[u] + 1;
            queue.push(this.to[e]);
          }
        }
      }
      return level[t] >= 0;
    };
    const dfs = (u: number, f: number): number => {
      if (u === t) return f;
      for (; it[u] >= 0; it[u] = this.next[it[u]]) {
        const e = it[u];
        const v = this.to[e];
        if (this.cap[e] <= eps || level[v] !== level[u] + 1) continue;
        const got = dfs(v, Math.min(f, this.cap[e]));
        if (got > 0) {
          this.cap[e] -= got;
          this.cap[e ^ 1] += got;
          return got;
        }
      }
      return 0;
    };
    while (bfs()) {
      for (let u = 0; u < this.size; u++) it[u] = this.head[u];
      for (;;) {
        const f = dfs(s, Number.POSITIVE_INFINITY);
        if (f <= 0) break;
        if (f === Number.POSITIVE_INFINITY) return f;
        flow += f;
      }
    }
    return flow;
  }

  /** After {@link maxFlow}: the nodes on the source side of a minimum cut (reachable in the residual graph). */
  sourceSide(s: number): Uint8Array {
    const seen = new Uint8Array(this.size);
    seen[s] = 1;
    const stack = [s];
    while (stack.length > 0) {
      const u = stack.pop()!;
      for (let e = this.head[u]; e >= 0; e = this.next[e]) {
        if (this.cap[e] > 1e-15 && !seen[this.to[e]]) {
          seen[this.to[e]] = 1;
          stack.push(this.to[e]);
        }
      }
    }
    return seen;
  }
}
