/**
 * SessionTimer (src/net/timer.ts): each set restarts the one timer — the same Timeout
 * refreshed when the duration is unchanged —, a timer that fired is armed again by the next
 * set, and 0 seconds clears it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { SessionTimer } from '../../src/net/timer.ts';

// scale 0.01: "1 second" is 10 ms.
test('SessionTimer: a restart pushes the expiry back; one expiry per set', async () => {
  let fired = 0;
  const t = new SessionTimer(() => fired++, 0.01);
  t.set(5); // 50 ms
  for (let i = 0; i < 4; i++) {
    await sleep(25);
    t.set(5); // restarted before it could fire
  }
  assert.equal(fired, 0);
  await sleep(150);
  assert.equal(fired, 1, 'fired once, after the last restart');
  // A timer that fired is armed again by the next set (same duration).
  t.set(5);
  await sleep(150);
  assert.equal(fired, 2);
  t.clear();
});

test('SessionTimer: another duration replaces the timer; 0 clears it', async () => {
  let fired = 0;
  const t = new SessionTimer(() => fired++, 0.01);
  t.set(50); // 500 ms
  t.set(2); // 20 ms
  await sleep(120);
  assert.equal(fired, 1);
  t.set(2);
  t.set(0);
  await sleep(120);
  assert.equal(fired, 1, 'cleared');
});
