/**
 * The log event catalog is closed: names and fields outside it are refused at compile time
 * (the @ts-expect-error lines fail `tsc` if a refusal stops happening) and at run time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { codeOf } from '../../support/code-of.ts';
import {
  EVENTS,
  FIELDS,
  catalogText,
  isEventName,
  type EventSpec,
} from '../../../src/gateway/observe/events.ts';
import { createGatewayLog, eventSink, silentLog } from '../../../src/gateway/observe/log.ts';

function collector(): { lines: () => Record<string, unknown>[]; write(s: string): void } {
  const raw: string[] = [];
  return {
    write: (s) => void raw.push(s),
    lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

test('every event is a dotted lowercase name with a level, a one-line summary and known fields', () => {
  const names = Object.keys(EVENTS);
  assert.ok(names.length >= 40);
  for (const name of names) {
    const e: EventSpec = EVENTS[name as keyof typeof EVENTS];
    assert.match(name, /^[a-z][a-z-]*(\.[a-z][a-z-]*)+$/, name);
    assert.ok(['debug', 'info', 'warn', 'error', 'fatal'].includes(e.level), name);
    assert.ok(e.summary.length > 10 && !e.summary.includes('\n'), name);
    const seen = new Set<string>();
    for (const f of e.fields) {
      const k = f.replace(/\?$/, '');
      assert.ok(Object.hasOwn(FIELDS, k), `${name}: unknown field ${k}`);
      assert.ok(!seen.has(k), `${name}: ${k} twice`);
      seen.add(k);
    }
  }
  // The names the brief and an operator's grep rely on.
  for (const n of [
    'smtp.connect',
    'smtp.refused',
    'smtp.rcpt.refused',
    'smtp.message.queued',
    'smtp.message.refused',
    'convert.failed',
    'route.decided',
    'queue.added',
    'queue.retry',
    'queue.deleted',
    'nmtp.delivered',
    'nmtp.rejected',
    'nmtp.deferred',
    'nmtp.polled',
    'nmtp.given-up',
    'nmtp.expired',
    'smtp-out.delivered',
    'smtp-out.rejected',
    'smtp-out.deferred',
    'dsn.queued',
    'dsn.suppressed',
    'gateway.start',
    'gateway.ready',
    'gateway.stop',
    'config.invalid',
  ]) {
    assert.ok(isEventName(n), n);
  }
  assert.equal(isEventName('toString'), false, 'an inherited property is not an event');
});

test('catalogText has one line per event', () => {
  const lines = catalogText().split('\n');
  assert.equal(lines.length, Object.keys(EVENTS).length);
  assert.ok(
    lines.some(
      (l) => l.startsWith('smtp.message.queued ') && l.includes('[session client queueId'),
    ),
  );
});

const REFUSED = 'NMTP_ERR_INVALID_ARGUMENT';

// Each refused call stands alone on the line after its @ts-expect-error, so that a wrapped
// line cannot move the directive away from the error it expects.
test('a name outside the catalog is refused at compile time and at run time (strict)', () => {
  const log = silentLog();
  // @ts-expect-error not in the catalog
  const typo = (): void => log.event('smtp.conect', { session: 's', client: '1.2.3.4' });
  assert.equal(codeOf(typo), REFUSED);
  const name: string = 'queue.exploded';
  assert.equal(
    codeOf(() => log.event(name as 'queue.added', { queueId: 'q', kind: 'nmtp' })),
    REFUSED,
  );
  assert.equal(
    codeOf(() => log.event('__proto__' as 'queue.added', { queueId: 'q', kind: 'nmtp' })),
    REFUSED,
  );
});

test('fields outside an event, a wrong type or a missing required field are refused', () => {
  const log = silentLog();
  // @ts-expect-error `cookie` is not a field of smtp.connect
  const extra = (): void => log.event('smtp.connect', { session: 's', client: 'c', cookie: 'x' });
  assert.equal(codeOf(extra), REFUSED);
  // @ts-expect-error `queueId` is required
  const missing = (): void => log.event('queue.added', { kind: 'nmtp' });
  assert.equal(codeOf(missing), REFUSED);
  // @ts-expect-error fields are required here
  const none = (): void => log.event('queue.added');
  assert.equal(codeOf(none), REFUSED);
  // @ts-expect-error code is a number
  log.event('smtp.refused', { session: 's', client: 'c', code: '421' });
  // @ts-expect-error err is a catalog code
  log.event('convert.failed', { err: 'NMTP_ERR_NO_SUCH_THING' });
  // An event with no required field may go without any.
  log.event('gateway.stopped');
  // undefined counts as absent (an optional field passed through).
  log.event('smtp.message.queued', {
    session: 's',
    client: 'c',
    queueId: 'q',
    messageId: undefined,
  });
});

test('child bindings are on every line and may not be given again', () => {
  const out = collector();
  const log = createGatewayLog({ destination: out, strict: true }).child({ service: 'smtp-in' });
  const session = log.child({ session: 'S1', client: '192.0.2.1' });
  session.event('smtp.connect', { clientPort: 4000, protocol: 'smtp' });
  // @ts-expect-error session is bound
  const again = (): void => session.event('smtp.timeout', { session: 'S2', detail: 'x' });
  assert.equal(codeOf(again), REFUSED);
  // @ts-expect-error not a field
  const colour = (): unknown => log.child({ colour: 'red' });
  assert.equal(codeOf(colour), REFUSED);
  const [line] = out.lines();
  assert.equal(out.lines().length, 1);
  assert.equal(line?.service, 'smtp-in');
  assert.equal(line?.session, 'S1');
  assert.equal(line?.client, '192.0.2.1');
  assert.equal(line?.event, 'smtp.connect');
});

test('not strict (the running gateway): a refused event becomes one log.invalid line', () => {
  const out = collector();
  const log = createGatewayLog({ destination: out });
  // An untyped caller (an adapter's onEvent(name: string, fields)).
  const untyped = eventSink(log);
  untyped('smtp.message.queued', { session: 's', client: 'c', queueId: 'q', nmtp: 2 });
  untyped('no.such.event', { a: 1 });
  log.event('queue.removed', { queueId: 'q' });
  const lines = out.lines();
  assert.deepEqual(
    lines.map((l) => [l.event, l.level]),
    [
      ['log.invalid', 'error'],
      ['log.invalid', 'error'],
      ['queue.removed', 'info'],
    ],
  );
  assert.match(
    String(lines[0]?.detail),
    /"smtp\.message\.queued": "nmtp" is not one of its fields; fields \{.*"nmtp":2\}/,
  );
  assert.match(String(lines[1]?.detail), /"no\.such\.event": not in the catalog/);
});
