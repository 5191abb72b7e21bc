/**
 * Process settings for the long-running commands (`nmtp-gateway start`, `nmtp serve`).
 */
import { setFlagsFromString } from 'node:v8';

/**
 * A daemon idles between bursts, and V8 throws away the bytecode (and with it the
 * optimized code) of functions not run for a while: the next burst ran on cold code, at
 * 1.5× the CPU per message (bench/gateway.bench.ts: the gateway's first round after
 * Postfix's was 2.5–3.0 ms per 4 KB message, the next ones 1.7–2.0; with this, 1.7–2.0 in
 * every round). The cost is the bytecode of functions run once, a few MB. Process-wide
 * (its threads too); set before the first request is served.
 */
export function keepCompiledCode(): void {
  setFlagsFromString('--no-flush-bytecode');
}
