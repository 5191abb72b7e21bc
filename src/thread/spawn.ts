/**
 * A worker thread whose entry is one of the project's modules. Run from the TypeScript
 * sources (tsx), a worker does not inherit the loader: it registers tsx's hooks itself
 * before importing the entry. Used by the mailbox writer (src/server/mailbox-writer.ts)
 * and the gateway's cleanup threads (src/gateway/cleanup-pool.ts).
 */
import { Worker } from 'node:worker_threads';

export function spawnThread(entry: URL, workerData: unknown): Worker {
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, { workerData });
  const api = import.meta.resolve('tsx/esm/api');
  const code =
    `import(${JSON.stringify(api)}).then((m) => { m.register(); ` +
    `return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(code, { eval: true, workerData });
}

/**
 * How long to wait before starting a thread again after its `restarts`-th death in a row:
 * 200 ms doubling to 30 s, so a thread that cannot start does not spin.
 */
export function restartPause(restarts: number): number {
  return Math.min(100 * 2 ** Math.min(restarts, 9), 30_000);
}
