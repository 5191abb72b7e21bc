/**
 * Process settings for the long-running commands (`nmtp-gateway start`, `nmtp serve`).
 */
import { setFlagsFromString } from 'node:v8';
import { HEAP_GROWTH_PERCENT } from '../gateway/config.ts';

/**
 * V8 settings for a daemon; process-wide (its threads too), set before the first request
 * is served.
 *
 * Compiled code kept: a daemon idles between bursts, and V8 throws away the bytecode (and
 * with it the optimized code) of functions not run for a while: the next burst ran on cold
 * code, at 1.5× the CPU per message (bench/gateway.bench.ts: the gateway's first round
 * after Postfix's was 2.5–3.0 ms per 4 KB message, the next ones 1.7–2.0; with this,
 * 1.7–2.0 in every round). The cost is the bytecode of functions run once, a few MB.
 *
 * Heap growth (`heapGrowthPercent`, V8's --heap-growing-percent; 0 leaves V8's choice):
 * how far the heap may grow past what the last full collection left before the next one.
 * V8 picks 10–30 % for a small heap that it collects fast, and counts the messages'
 * buffers (memory outside the heap) against that limit: at 100 KB per message the gateway
 * ran a full mark-compact every 35 messages or so (`--trace-gc`: 25 in a round of 500), and
 * its GC threads used about a third of the event loop's CPU. At 200 % (a limit of three
 * times the live heap, within V8's own range of up to four): 7 in the same round, 15–25 %
 * less CPU per message; peak RSS at 100 KB 40–50 MB higher (bench runs 16–18 against 13–15).
 */
export function tuneRuntime(heapGrowthPercent: number = HEAP_GROWTH_PERCENT): void {
  setFlagsFromString('--no-flush-bytecode');
  if (heapGrowthPercent > 0) setFlagsFromString(`--heap-growing-percent=${heapGrowthPercent}`);
}
