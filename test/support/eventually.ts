/**
 * Waits for something another process makes true "moments later" — a journalled message's
 * files appear in new/ just after its answer (src/server/mailbox-store.ts) — failing with
 * `what` if it is still false after `ms`. Not a timing assertion: the bound is only there
 * so a bug fails the test instead of hanging it (30 s: "moments" on an idle machine can be
 * seconds on a loaded CI one).
 */
import { setTimeout as sleep } from 'node:timers/promises';

export async function eventually(check: () => boolean, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`still not true after ${ms} ms: ${what}`);
    await sleep(5);
  }
}
