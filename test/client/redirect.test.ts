/**
 * Following a 351 end to end (docs/protocol.md §60.10.8), over real TLS on loopback with the
 * reference servers: the domain's mailbox redirects roaming@example.net (policy.json) to a
 * target; the sender connects there without trusting its certificate, sends PROVE with a
 * fresh nonce, and delivers only if the target proves the recipient's key on this very
 * connection — else it falls back to the domain with `RCPT <a> redirect=failed`.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createTcpServer } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer, type Server } from 'node:tls';
import { fingerprint, keyPairFromSeed } from '../../src/core/keys/index.ts';
import { deliver, type DeliveryResult } from '../../src/client/transfer.ts';
import type { Serving } from '../../src/server/serve.ts';
import { identity, mailbox, smallMessage, srvOf, world, type World } from './helpers.ts';
import { readStored } from '../support/stored.ts';

const alice = keyPairFromSeed(randomBytes(32));
const stranger = keyPairFromSeed(randomBytes(32));
const ROAMING = 'roaming@example.net';
const aliceKeys = new Map([[ROAMING, alice]]);

let w: World;
let domain: Serving;
let laptop: Serving;
let imposter: Serving;
let keyless: Serving;
let loop: Serving;
let relay: Server;
let relayPort = 0;
let downPort = 0;

before(async () => {
  w = world('nmtp-redirect-');
  domain = await mailbox(w, 'domain');
  const target = { cert: w.untrusted, serverName: 'roaming-laptop.example.net' };
  laptop = await mailbox(w, 'laptop', { ...target, userKeys: aliceKeys });
  imposter = await mailbox(w, 'imposter', { ...target, userKeys: new Map([[ROAMING, stranger]]) });
  keyless = await mailbox(w, 'keyless', target);
  // A target that proves the key but redirects the recipient once more.
  loop = await mailbox(w, 'loop', {
    ...target,
    userKeys: aliceKeys,
    policy: { redirect: { [ROAMING]: `127.0.0.1:${domain.port} ${fingerprint(alice.publicKey)}` } },
  });
  // A man in the middle: it does not hold the key, so it relays everything (the sender's
  // nonce included) to the real target over its own TLS connection.
  relay = createTlsServer(
    {
      cert: readFileSync(w.untrusted.certFile),
      key: readFileSync(w.untrusted.keyFile),
      minVersion: 'TLSv1.3',
    },
    (c) => {
      const up = tlsConnect({ host: '127.0.0.1', port: laptop.port, rejectUnauthorized: false });
      c.pipe(up).pipe(c);
      c.on('error', () => up.destroy());
      up.on('error', () => c.destroy());
    },
  );
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  relayPort = (relay.address() as { port: number }).port;
  const dead = createTcpServer();
  await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
  downPort = (dead.address() as { port: number }).port;
  await new Promise((resolve) => dead.close(resolve));
});

after(async () => {
  for (const s of [domain, laptop, imposter, keyless, loop]) await s.close();
  await new Promise((resolve) => relay.close(resolve));
  w.cleanup();
});

/** What a server stored (as sent: without its Received field), once every answer it gave has its copy in new/. */
const stored = async (name: string): Promise<Buffer[]> => {
  const s = { domain, laptop, imposter, keyless, loop }[name];
  await s?.mailbox.settled();
  return readdirSync(join(w.dir, name, 'new'))
    .filter((f) => f.endsWith('.nmtp'))
    .map((f) => readStored(join(w.dir, name, 'new', f)).sent);
};

/** The domain redirects roaming to 127.0.0.1:port; then one message to roaming and bob. */
async function send(port: number, subject: string): Promise<DeliveryResult> {
  writeFileSync(
    join(w.dir, 'domain', 'policy.json'),
    JSON.stringify({
      redirect: { [ROAMING]: `127.0.0.1:${port} ${fingerprint(alice.publicKey)}` },
    }),
  );
  return deliver('example.net', [ROAMING, 'bob@example.net'], smallMessage(subject), identity, {
    srv: srvOf(domain.port),
    ca: w.ca,
  });
}

const outcome = (r: DeliveryResult, rcpt: string) => {
  const x = r.recipients.find((y) => y.rcpt === rcpt);
  assert.ok(x, JSON.stringify(r));
  return x;
};

test('the target proves the key: the recipient is delivered there, the rest at the domain', async () => {
  const m = smallMessage('followed');
  const before = (await stored('laptop')).length;
  const r = await send(laptop.port, 'followed');
  assert.deepEqual(r.unanswered, []);
  const roaming = outcome(r, ROAMING);
  assert.equal(roaming.reply.code, 250);
  assert.equal(roaming.endpoint.port, laptop.port);
  assert.deepEqual(roaming.redirect, {
    target: { host: '127.0.0.1', port: laptop.port },
    fingerprint: fingerprint(alice.publicKey),
    followed: true,
  });
  assert.equal(outcome(r, 'bob@example.net').endpoint.port, domain.port);
  const got = await stored('laptop');
  assert.equal(got.length, before + 1);
  assert.ok(
    got.some((b) => b.equals(Buffer.from(m))),
    'byte-identical at the target',
  );
});

for (const [name, port, why] of [
  ['proves another key', () => imposter.port, 'imposter'],
  ['holds no key (PROVE_NO_KEY)', () => keyless.port, 'keyless'],
  ['is down', () => downPort, undefined],
  ['relays to the real key holder (the TLS binding differs)', () => relayPort, 'laptop'],
] as const) {
  test(`the target ${name}: fall back to the domain with redirect=failed`, async () => {
    const before = why === undefined ? 0 : (await stored(why)).length;
    const domainBefore = (await stored('domain')).length;
    const r = await send(port(), name);
    assert.deepEqual(r.unanswered, []);
    const roaming = outcome(r, ROAMING);
    // The domain's mailbox takes a redirect=failed recipient (it never answers 351 to one).
    assert.equal(roaming.reply.code, 250, JSON.stringify(roaming.reply));
    assert.equal(roaming.endpoint.port, domain.port);
    assert.equal(roaming.redirect?.followed, false);
    assert.equal(
      (await stored('domain')).length,
      domainBefore + 2,
      'bob, then roaming on the fallback',
    );
    if (why !== undefined)
      assert.equal((await stored(why)).length, before, 'nothing delivered there');
  });
}

test('a 351 at the target is final for this message: REDIRECT_FAILED, no second redirect', async () => {
  const domainBefore = (await stored('domain')).length;
  const r = await send(loop.port, 'loop');
  const roaming = outcome(r, ROAMING);
  assert.equal(roaming.reply.params.err, 'NMTP_ERR_TRANSPORT_REDIRECT_FAILED');
  assert.equal(roaming.reply.code, 451);
  assert.equal(roaming.endpoint.port, loop.port);
  assert.equal((await stored('domain')).length, domainBefore + 1, 'only bob');
  assert.deepEqual(await stored('loop'), []);
});
