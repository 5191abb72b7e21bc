/**
 * Starts test/queue/crash-child.ts (adds `crash1`, waits until it is delivered, closes) with
 * test/support/crash-at.ts, until it dies at `at`; each delivery taking `slowMs`. Shared by
 * the queue's crash tests (crash-journal, crash-leftovers).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { CrashAt } from '../support/crash-at.ts';

const child = fileURLToPath(new URL('./crash-child.ts', import.meta.url));
const crashAt = fileURLToPath(new URL('../support/crash-at.ts', import.meta.url));

export function runCrashChild(
  dir: string,
  at: CrashAt,
  slowMs = 0,
): Promise<{ signal: string | null; out: string }> {
  const args = ['--import', 'tsx', '--import', crashAt, child, dir, String(slowMs)];
  const p = spawn(process.execPath, args, {
    env: { ...process.env, NMTP_TEST_CRASH_AT: JSON.stringify(at) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => p.once('exit', (_code, signal) => resolve({ signal, out })));
}
