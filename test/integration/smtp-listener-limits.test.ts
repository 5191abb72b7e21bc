/**
 * The SMTP listener's bounds on real sockets: connections at once and per client address
 * (421 4.7.0), the command timeout, the whole-DATA timeout and the minimum data rate
 * (421 4.4.2), the greeting pause (421 to an early talker), and close() telling connected
 * clients 421 4.3.2. Timeouts are configured in fractions of a second (the listener takes
 * seconds as given); no test measures time.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { startSmtpListener, type SmtpListener } from '../../adapters/smtp-listener/index.ts';
import { NmtpError } from '../../src/core/errors/index.ts';
import type { SmtpInHandler } from '../../src/gateway/ports.ts';
import {
  RawClient,
  scripted,
  smtpConfig,
  type SmtpConfig,
} from '../adapters/smtp-listener/support.ts';

const listeners: SmtpListener[] = [];
after(async () => {
  await Promise.all(listeners.map((l) => l.close()));
});

async function start(config: SmtpConfig, script: Partial<SmtpInHandler> = {}) {
  const { handler, seen } = scripted(script);
  const listener = await startSmtpListener({
    protocol: 'smtp',
    host: '127.0.0.1',
    port: 0,
    config,
    hostname: 'mx.gateway.test',
    tls: undefined,
    handler,
    reverseLookup: false,
  });
  listeners.push(listener);
  return { listener, port: listener.port, seen };
}

async function greeted(port: number, localAddress = '127.0.0.1'): Promise<RawClient> {
  const c = await RawClient.open(port, localAddress);
  assert.equal(await c.reply(), '220 mx.gateway.test ESMTP');
  return c;
}

const TOO_MANY_FROM =
  /^421 4\.7\.0 mx\.gateway\.test Error: too many connections from 127\.0\.0\.1 # NMTP_ERR_TRANSPORT_TOO_MANY_CONNECTIONS$/;

test('connections per client: the one past the limit gets 421 4.7.0 and is closed; others still come in', async () => {
  const { listener, port } = await start(smtpConfig({ connectionsPerClient: 2, connections: 10 }));
  const a = await greeted(port);
  const b = await greeted(port);
  const c = await RawClient.open(port);
  const refused = await c.rest();
  assert.equal(refused.length, 1);
  assert.match(refused[0]!, TOO_MANY_FROM);
  // Another client address is not affected.
  const other = await greeted(port, '127.0.0.2');
  assert.equal(listener.connections().perClient.get('127.0.0.1'), 2);
  assert.equal(listener.connections().perClient.get('127.0.0.2'), 1);
  // A closed connection gives its place back.
  assert.equal(await a.cmd('QUIT'), '221 2.0.0 Bye');
  await a.closed;
  while ((listener.connections().perClient.get('127.0.0.1') ?? 0) > 1) {
    await new Promise((r) => setImmediate(r));
  }
  const d = await greeted(port);
  for (const x of [b, d, other]) x.destroy();
});

test('connections at once: past the total the client gets 421 4.7.0', async () => {
  const { port } = await start(smtpConfig({ connectionsPerClient: 10, connections: 2 }));
  const a = await greeted(port, '127.0.0.3');
  const b = await greeted(port, '127.0.0.4');
  const c = await RawClient.open(port, '127.0.0.5');
  assert.deepEqual(await c.rest(), [
    '421 4.7.0 mx.gateway.test Error: too many connections # NMTP_ERR_TRANSPORT_TOO_MANY_CONNECTIONS',
  ]);
  a.destroy();
  b.destroy();
});

test("greetPause 0 (the default): the 220 needs no timer, smtp-server's 100 ms pause is gone", async (t) => {
  assert.equal(smtpConfig().greetPause, 0);
  // With setTimeout frozen, a greeting that waited for any timer would never come.
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { port, seen } = await start(smtpConfig());
  const c = await greeted(port);
  assert.equal(seen.connects.length, 1);
  assert.equal(await c.cmd('QUIT'), '221 2.0.0 Bye');
  await c.closed;
});

test('greetPause: the 220 comes after it; a client that talks first gets 421 and is closed', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { listener, port, seen } = await start(smtpConfig({}, { greetPause: 5 }));
  // An early talker: EHLO before any greeting. The handler never hears of it.
  const early = await RawClient.open(port);
  early.write('EHLO early.example\r\n');
  assert.deepEqual(await early.rest(), ['421 4.7.0 mx.gateway.test Error: you talk too soon']);
  assert.equal(seen.connects.length, 0);
  // Its pause running out after the close greets nobody.
  t.mock.timers.tick(5000);
  assert.equal(seen.connects.length, 0);

  await early.closed;
  while (listener.connections().open > 0) await new Promise((r) => setImmediate(r));

  // A patient client is greeted once the pause has passed (its timer is set once the
  // listener has counted it).
  const c = await RawClient.open(port);
  while (listener.connections().open === 0) await new Promise((r) => setImmediate(r));
  t.mock.timers.tick(4999);
  assert.equal(seen.connects.length, 0);
  t.mock.timers.tick(1);
  assert.equal(await c.reply(), '220 mx.gateway.test ESMTP');
  assert.equal(seen.connects.length, 1);
  assert.match((await c.cmd('EHLO client.example')) ?? '', /^250-/);
  assert.equal(await c.cmd('QUIT'), '221 2.0.0 Bye');
  await c.closed;
});

test('command timeout: a silent client gets 421 4.4.2 and is disconnected', async () => {
  // 1 s, not less: the client and the listener share this process, and a stall of a loaded
  // machine between the greeting and EHLO must not let the timeout fire first.
  const { port } = await start(smtpConfig({ commandTimeout: 1 }));
  const c = await greeted(port);
  assert.match((await c.cmd('EHLO client.example')) ?? '', /^250-/);
  assert.deepEqual(await c.rest(), [
    '421 4.4.2 mx.gateway.test Error: timeout exceeded # NMTP_ERR_GW_TIMEOUT',
  ]);
});

/** Up to the 354, then octets one at a time every `everyMs` until the server hangs up. */
async function trickleData(port: number, everyMs: number): Promise<string[]> {
  const c = await greeted(port);
  c.write(
    'EHLO client.example\r\nMAIL FROM:<a@sender.example>\r\nRCPT TO:<b@x.example>\r\nDATA\r\n',
  );
  for (let i = 0; i < 4; i++) await c.reply();
  let stop = false;
  void c.closed.then(() => (stop = true));
  const pump = (async () => {
    while (!stop) {
      c.write('x');
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  const rest = await c.rest();
  await pump;
  return rest;
}

test('minimum data rate: a client trickling DATA slower than minDataRate gets 421 4.4.2', async () => {
  const { port, seen } = await start(
    smtpConfig({ commandTimeout: 1, dataTimeout: 0, minDataRate: 1000 }),
  );
  // One octet per 20 ms: never idle for a commandTimeout (1 s, also the grace period), far
  // below 1000 octets/s.
  assert.deepEqual(await trickleData(port, 20), [
    '421 4.4.2 mx.gateway.test Error: DATA slower than 1000 octets/s # NMTP_ERR_GW_TIMEOUT',
  ]);
  assert.equal(seen.data.length, 1);
  assert.ok(seen.data[0]!.error instanceof NmtpError);
  assert.equal(seen.data[0]!.bytes, undefined);
});

test('DATA timeout: the whole DATA phase is bounded', async () => {
  const { port, seen } = await start(
    smtpConfig({ commandTimeout: 5, dataTimeout: 0.3, minDataRate: 0 }),
  );
  assert.deepEqual(await trickleData(port, 20), [
    '421 4.4.2 mx.gateway.test Error: DATA not finished within 0.3 s # NMTP_ERR_GW_TIMEOUT',
  ]);
  assert.equal(seen.data[0]!.bytes, undefined);
});

test('a client silent inside DATA meets the command timeout there too', async () => {
  // 1 s: see "command timeout" (the greeting to the pipelined commands is the same gap).
  const { port } = await start(smtpConfig({ commandTimeout: 1, dataTimeout: 0, minDataRate: 0 }));
  const c = await greeted(port);
  c.write(
    'EHLO client.example\r\nMAIL FROM:<a@sender.example>\r\nRCPT TO:<b@x.example>\r\nDATA\r\n',
  );
  for (let i = 0; i < 4; i++) await c.reply();
  c.write('Subject: x\r\n');
  assert.deepEqual(await c.rest(), [
    '421 4.4.2 mx.gateway.test Error: timeout exceeded # NMTP_ERR_GW_TIMEOUT',
  ]);
});

test('close(): connected clients get 421 4.3.2 and the listener stops accepting', async () => {
  const { handler } = scripted();
  const listener = await startSmtpListener({
    protocol: 'smtp',
    host: '127.0.0.1',
    port: 0,
    config: smtpConfig(),
    hostname: 'mx.gateway.test',
    tls: undefined,
    handler,
    reverseLookup: false,
  });
  const c = await greeted(listener.port);
  const closing = listener.close();
  assert.deepEqual(await c.rest(), ['421 4.3.2 mx.gateway.test Service shutting down']);
  await closing;
  assert.equal(listener.connections().open, 0);
  await assert.rejects(RawClient.open(listener.port));
});
