/**
 * A binary min-heap of (at, id) pairs, for the embedded queue's wake-up index
 * (src/queue/queue.ts): the earliest moment is found in O(1) and kept in O(log n) per
 * change, where a scan of every entry kept (finished ones included, for `keepDone`) cost
 * O(n) per call. Deletion is lazy: the queue pushes a new pair when an entry's moment
 * changes and skips the pairs that no longer match what it holds.
 */
export interface Wake {
  /** Unix seconds. */
  readonly at: number;
  readonly id: string;
}

export class WakeHeap {
  private readonly a: Wake[] = [];

  get size(): number {
    return this.a.length;
  }

  peek(): Wake | undefined {
    return this.a[0];
  }

  push(w: Wake): void {
    const a = this.a;
    a.push(w);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]!.at <= w.at) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = w;
  }

  pop(): Wake | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (top === undefined || last === undefined || a.length === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const c = r < a.length && a[r]!.at < a[l]!.at ? r : l;
      if (a[c]!.at >= last.at) break;
      a[i] = a[c]!;
      i = c;
    }
    a[i] = last;
    return top;
  }
}

/** Drops every pair `keep` refuses (the stale ones), in O(n): for a heap grown with them. */
export function compact(h: WakeHeap, keep: (w: Wake) => boolean): WakeHeap {
  const out = new WakeHeap();
  for (let w = h.pop(); w !== undefined; w = h.pop()) if (keep(w)) out.push(w);
  return out;
}
