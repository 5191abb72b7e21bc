/**
 * DKIM signing and ARC sealing of converted messages (adapters/legacy-auth), checked by two
 * independent verifiers: Debian's python3-dkim (dkimpy, run by /usr/bin/python3 through
 * ./oracle.py; test/harness installs it) and mailauth's own authenticate(). Public keys reach
 * both through a lookup function (dkimpy's dnsfunc, mailauth's resolver): no DNS server.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { authenticate } from 'mailauth';
import { NmtpError } from '../../../src/core/errors/index.ts';
import type { FramedMessage } from '../../../src/core/frame/index.ts';
import { framedToLegacy, type LegacyOptions } from '../../../adapters/legacy/index.ts';
import {
  SIGNED_FIELDS,
  createLegacySigner,
  signLegacy,
  type LegacySignerConfig,
  type TxtResolver,
} from '../../../adapters/legacy-auth/index.ts';
import { checkOutgoing } from '../../../adapters/smtp-sender/outgoing-guard.ts';
import { PEERS, box, f, leaf } from '../legacy/helpers.ts';

const PYTHON = '/usr/bin/python3';
const ORACLE = fileURLToPath(new URL('./oracle.py', import.meta.url));

const pem = (k: KeyObject, type: 'pkcs8' | 'pkcs1' = 'pkcs8'): string =>
  k.export({ type, format: 'pem' }).toString();
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ed = generateKeyPairSync('ed25519');
const rsa2 = generateKeyPairSync('rsa', { modulusLength: 2048 });

/** The TXT value of a key record (RFC 6376 §3.6.1; RFC 8463 §4 for Ed25519: the raw key). */
function keyRecord(pub: KeyObject): string {
  const der = pub.export({ type: 'spki', format: 'der' });
  if (pub.asymmetricKeyType === 'ed25519') {
    return `v=DKIM1; k=ed25519; p=${der.subarray(der.length - 32).toString('base64')}`;
  }
  return `v=DKIM1; k=rsa; p=${der.toString('base64')}`;
}

const RECORDS: Record<string, string> = {
  's1._domainkey.gw.example.net': keyRecord(rsa.publicKey),
  'ed1._domainkey.gw.example.net': keyRecord(ed.publicKey),
  'arc2._domainkey.relay.example': keyRecord(rsa2.publicKey),
};

const resolver: TxtResolver = async (name, rr) => {
  const v = rr === 'TXT' ? RECORDS[name.toLowerCase().replace(/\.$/, '')] : undefined;
  if (v === undefined)
    throw Object.assign(new Error(`no ${rr} for ${name}`), { code: 'ENOTFOUND' });
  return [[v]];
};

const NOW = new Date('2026-12-07T10:00:00.600Z');
const BASE: LegacySignerConfig = {
  domain: 'gw.example.net',
  selector: 's1',
  privateKeyPem: pem(rsa.privateKey),
  authservId: 'gw.example.net',
  arc: true,
  resolver,
  now: () => NOW,
};
const VERDICTS = {
  authservId: 'gw.example.net',
  verdicts: [
    { domain: 'nmtp.example', result: 'pass' as const },
    { domain: 'nmtp.example', result: 'pass' as const, user: 'alice@nmtp.example' },
  ],
};

/** A converted message with what conversion produces: encoded words, parts, 8-bit text. */
function converted(peer: LegacyOptions): Uint8Array {
  const m: FramedMessage = {
    trace: [f('Trace', 'from nmtp.example by gw.example.net; 2026-12-07T09:59:58+00:00')],
    root: box(
      [
        f('From', 'Alice Émile <alice@nmtp.example>'),
        f('To', 'Bob <bob@legacy.example>'),
        f('Cc', '<carol@legacy.example>'),
        f('Subject', 'Quarterly numbers — Größe'),
        f('Date', '2026-12-07T09:59:00+00:00'),
        f('Message-Id', '<q4@nmtp.example>'),
        f('Content-Type', 'multipart/mixed'),
      ],
      [
        leaf([f('Content-Type', 'text/plain')], 'Hello Bob,\r\n.\r\nnumbers attached — ça va?\r\n'),
        leaf(
          [f('Content-Type', 'application/octet-stream'), f('Content-Filename', 'q4.bin')],
          new Uint8Array([0, 1, 2, 13, 10, 46, 13, 10, 255]),
        ),
      ],
    ),
  };
  return framedToLegacy(m, {
    ...peer,
    authResults: VERDICTS,
    random: (n) => new Uint8Array(n).fill(7),
  });
}

interface OracleResult {
  dkim: boolean[];
  arc: { cv: string; reason: string };
  sets: { instance: number; ams_valid: boolean; as_valid: boolean; cv: string }[];
}

function python(messages: readonly Uint8Array[]): OracleResult[] {
  const input = JSON.stringify({
    records: RECORDS,
    messages: messages.map((m) => Buffer.from(m).toString('base64')),
  });
  const r = spawnSync(PYTHON, [ORACLE], { input, encoding: 'utf8', maxBuffer: 1 << 26 });
  assert.equal(r.status, 0, `oracle failed (python3-dkim installed by test/harness?): ${r.stderr}`);
  return JSON.parse(r.stdout) as OracleResult[];
}

async function mailauth(message: Uint8Array): Promise<{ dkim: string[]; arc: string; i: unknown }> {
  const r = await authenticate(Buffer.from(message), {
    resolver,
    ip: '192.0.2.25',
    helo: 'gw.example.net',
    sender: 'alice@nmtp.example',
    mta: 'mx.legacy.example',
    disableBimi: true,
  });
  return {
    dkim: r.dkim.results.map((x) => x.status.result),
    arc: r.arc === false ? 'disabled' : r.arc.status.result,
    i: r.arc === false ? undefined : r.arc.i,
  };
}

/** The header fields called `name`, unfolded, top first. */
function headers(message: Uint8Array, name: string): string[] {
  const s = Buffer.from(message).toString('latin1');
  const head = s.slice(0, s.indexOf('\r\n\r\n'));
  return head
    .replace(/\r\n[ \t]/g, ' ')
    .split('\r\n')
    .filter((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`))
    .map((l) => l.slice(name.length + 1).trim());
}

const tag = (value: string, t: string): string | undefined =>
  value
    .split(';')
    .map((x) => x.trim())
    .find((x) => x.startsWith(`${t}=`))
    ?.slice(t.length + 1)
    .replace(/\s+/g, '');

/** Changes one octet of the body (the first "B" of "Bob," after the header) to "C". */
function tamperBody(message: Uint8Array): Uint8Array {
  const b = Buffer.from(message);
  const at = b.indexOf('Hello Bob', b.indexOf('\r\n\r\n'));
  assert.ok(at > 0);
  const out = Buffer.from(b);
  out[at + 6] = 0x43;
  return out;
}

test('RSA DKIM + ARC i=1 on converted messages: python3-dkim and mailauth both pass', async () => {
  const sign = createLegacySigner(BASE);
  const signed: Uint8Array[] = [];
  for (const peer of PEERS) {
    const msg = converted(peer);
    const out = await sign(msg, { authResults: headers(msg, 'Authentication-Results')[0]! });
    // The signed message is the converted one with the new fields on top.
    assert.ok(
      Buffer.from(out)
        .subarray(out.length - msg.length)
        .equals(msg),
    );
    checkOutgoing(out);
    signed.push(out);

    const [dkim] = headers(out, 'DKIM-Signature');
    assert.equal(tag(dkim!, 'a'), 'rsa-sha256');
    assert.equal(tag(dkim!, 'c'), 'relaxed/relaxed');
    assert.equal(tag(dkim!, 'd'), 'gw.example.net');
    assert.equal(tag(dkim!, 's'), 's1');
    assert.equal(tag(dkim!, 't'), String(Math.floor(NOW.getTime() / 1000)));
    // Every field of the list that the message has, and nothing else (no trace fields).
    const h = tag(dkim!, 'h')!.toLowerCase().split(':').sort();
    const present = SIGNED_FIELDS.map((x) => x.toLowerCase()).filter(
      (x) => headers(msg, x).length > 0,
    );
    assert.deepEqual(h, present.sort());
    assert.ok(h.includes('from') && h.includes('subject') && h.includes('content-type'));
    const [seal] = headers(out, 'ARC-Seal');
    assert.equal(tag(seal!, 'i'), '1');
    assert.equal(tag(seal!, 'cv'), 'none');
    assert.equal(tag(seal!, 'd'), 'gw.example.net');
    // The ARC-Authentication-Results carry exactly the converter's verdict text.
    assert.deepEqual(headers(out, 'ARC-Authentication-Results'), [
      `i=1; ${headers(msg, 'Authentication-Results')[0]!}`,
    ]);
    assert.equal(
      headers(out, 'ARC-Authentication-Results')[0],
      'i=1; gw.example.net; nmtp=pass header.d=nmtp.example; nmtp=pass header.d=nmtp.example header.i=alice@nmtp.example',
    );
    assert.match(tag(headers(out, 'ARC-Message-Signature')[0]!, 'h')!, /(^|:)dkim-signature(:|$)/i);

    const ma = await mailauth(out);
    assert.deepEqual(ma.dkim, ['pass']);
    assert.equal(ma.arc, 'pass');
    assert.equal(ma.i, 1);
  }
  for (const r of python(signed)) {
    assert.deepEqual(r.dkim, [true]);
    assert.equal(r.arc.cv, 'pass', r.arc.reason);
  }
});

test('Ed25519 DKIM (RFC 8463) with an RSA ARC key: both verifiers pass', async () => {
  const sign = createLegacySigner({
    ...BASE,
    selector: 'ed1',
    privateKeyPem: pem(ed.privateKey),
    algorithm: 'ed25519-sha256',
    arcKey: { selector: 's1', privateKeyPem: pem(rsa.privateKey) },
  });
  const out = await sign(converted(PEERS[3]!), { authResults: 'nmtp=pass header.d=nmtp.example' });
  assert.equal(tag(headers(out, 'DKIM-Signature')[0]!, 'a'), 'ed25519-sha256');
  assert.equal(tag(headers(out, 'ARC-Seal')[0]!, 's'), 's1');
  // The bare verdict text gets the authserv-id in front.
  assert.equal(
    headers(out, 'ARC-Authentication-Results')[0],
    'i=1; gw.example.net; nmtp=pass header.d=nmtp.example',
  );
  assert.deepEqual((await mailauth(out)).dkim, ['pass']);
  const [py] = python([out]);
  assert.deepEqual(py!.dkim, [true]);
  assert.equal(py!.arc.cv, 'pass', py!.arc.reason);
});

test('a second seal over the first: i=2, cv=pass, and both verifiers pass the chain', async () => {
  const first = await signLegacy(converted(PEERS[0]!), {
    ...BASE,
    authResults: 'nmtp=pass header.d=nmtp.example',
  });
  const relay = createLegacySigner({
    ...BASE,
    domain: 'relay.example',
    selector: 'arc2',
    privateKeyPem: pem(rsa2.privateKey),
    authservId: 'relay.example',
  });
  const second = await relay(first, { authResults: 'nmtp=pass header.d=nmtp.example' });
  const seals = headers(second, 'ARC-Seal');
  assert.equal(seals.length, 2);
  assert.equal(tag(seals[0]!, 'i'), '2');
  assert.equal(tag(seals[0]!, 'cv'), 'pass');
  assert.equal(
    headers(second, 'ARC-Authentication-Results')[0],
    'i=2; relay.example; nmtp=pass header.d=nmtp.example; arc=pass',
  );
  const ma = await mailauth(second);
  assert.equal(ma.arc, 'pass');
  assert.equal(ma.i, 2);
  assert.deepEqual(ma.dkim, ['pass', 'pass']);
  const [py] = python([second]);
  assert.deepEqual(py!.dkim, [true, true]);
  assert.equal(py!.arc.cv, 'pass', py!.arc.reason);
});

test('one changed body octet: DKIM and ARC fail for both verifiers', async () => {
  const one = await signLegacy(converted(PEERS[1]!), {
    ...BASE,
    authResults: 'nmtp=pass header.d=nmtp.example',
  });
  const two = await createLegacySigner({
    ...BASE,
    domain: 'relay.example',
    selector: 'arc2',
    privateKeyPem: pem(rsa2.privateKey),
  })(one, { authResults: 'nmtp=pass header.d=nmtp.example' });
  const bad = [tamperBody(one), tamperBody(two)];
  const py = python([one, ...bad]);
  assert.deepEqual(py[0]!.dkim, [true]);
  assert.deepEqual(py[1]!.dkim, [false]);
  assert.equal(py[1]!.arc.cv, 'fail');
  assert.deepEqual(py[2]!.dkim, [false, false]);
  assert.equal(py[2]!.arc.cv, 'fail');
  for (const m of bad) {
    const ma = await mailauth(m);
    assert.ok(
      ma.dkim.length > 0 && ma.dkim.every((r) => r === 'fail' || r === 'neutral'),
      ma.dkim.join(),
    );
    assert.equal(ma.arc, 'fail');
  }
});

test('a chain that fails validation gets cv=fail once, and no set after a cv=fail (RFC 8617 §5.1)', async () => {
  const one = await signLegacy(converted(PEERS[0]!), {
    ...BASE,
    authResults: 'nmtp=pass header.d=nmtp.example',
  });
  const relayConfig = {
    ...BASE,
    domain: 'relay.example',
    selector: 'arc2',
    privateKeyPem: pem(rsa2.privateKey),
  };
  const two = await signLegacy(tamperBody(one), {
    ...relayConfig,
    authResults: 'nmtp=fail header.d=nmtp.example',
  });
  const seals = headers(two, 'ARC-Seal');
  assert.equal(seals.length, 2);
  assert.equal(tag(seals[0]!, 'cv'), 'fail');
  assert.match(headers(two, 'ARC-Authentication-Results')[0]!, /; arc=fail$/);
  // The new DKIM signature is over the message as it now is, so it passes.
  const [py] = python([two]);
  assert.equal(py!.dkim[0], true);
  // dkimpy: a valid set that reports cv=fail ends the chain ("terminated").
  assert.equal(py!.arc.cv, 'terminated', py!.arc.reason);
  // The new set's AMS is good. (Its seal covers only its own set, as both mailauth's and
  // dkimpy's signers do for cv=fail; dkimpy's verifier checks it over every set, so its
  // as_valid is not compared.)
  assert.equal(py!.sets[0]!.ams_valid, true);
  assert.equal(py!.sets[0]!.cv, 'fail');
  assert.equal((await mailauth(two)).arc, 'fail');

  const three = await signLegacy(two, {
    ...relayConfig,
    authResults: 'nmtp=pass header.d=nmtp.example',
  });
  assert.equal(headers(three, 'ARC-Seal').length, 2, 'no set after cv=fail');
  assert.equal(headers(three, 'DKIM-Signature').length, 3, 'DKIM still signs');
});

test('arc: false signs DKIM only', async () => {
  const out = await signLegacy(converted(PEERS[2]!), { ...BASE, arc: false, authResults: 'none' });
  assert.equal(headers(out, 'ARC-Seal').length, 0);
  assert.equal(headers(out, 'DKIM-Signature').length, 1);
  const [py] = python([out]);
  assert.deepEqual(py!.dkim, [true]);
  assert.equal(py!.arc.cv, 'none');
});

test('a PKCS#1 RSA key is accepted; the algorithm comes from the key', async () => {
  const out = await signLegacy(converted(PEERS[0]!), {
    ...BASE,
    privateKeyPem: pem(rsa.privateKey, 'pkcs1'),
    authResults: 'none',
  });
  assert.match(Buffer.from(out).toString('latin1'), /^ARC-Seal: /);
  assert.deepEqual(python([out])[0]!.dkim, [true]);
});

test('bad keys and settings are refused at start-up with NMTP_ERR_LEGACY_DKIM_KEY', () => {
  const keyError = (err: unknown): boolean =>
    err instanceof NmtpError &&
    err.code === 'NMTP_ERR_LEGACY_DKIM_KEY' &&
    !err.temporary &&
    !err.message.includes('PRIVATE KEY');
  const small = generateKeyPairSync('rsa', { modulusLength: 768 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const encrypted = rsa.privateKey
    .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' })
    .toString();
  const cases: [string, Partial<LegacySignerConfig>][] = [
    ['garbage', { privateKeyPem: 'not a key' }],
    [
      'a public key',
      {
        privateKeyPem: createPublicKey(rsa.privateKey)
          .export({ type: 'spki', format: 'pem' })
          .toString(),
      },
    ],
    ['an encrypted key', { privateKeyPem: encrypted }],
    ['768-bit RSA', { privateKeyPem: pem(small.privateKey) }],
    ['an EC key', { privateKeyPem: pem(ec.privateKey) }],
    ['ed25519-sha256 with an RSA key', { algorithm: 'ed25519-sha256' }],
    [
      'rsa-sha256 with an Ed25519 key',
      { privateKeyPem: pem(ed.privateKey), algorithm: 'rsa-sha256' },
    ],
    ['ARC with only an Ed25519 key', { privateKeyPem: pem(ed.privateKey) }],
    [
      'an Ed25519 ARC key',
      {
        privateKeyPem: pem(ed.privateKey),
        arcKey: { selector: 's1', privateKeyPem: pem(ed.privateKey) },
      },
    ],
    ['a domain with a space', { domain: 'gw example.net' }],
    ['a U-label domain', { domain: 'gw.bücher.example' }],
    ['an empty selector', { selector: '' }],
    ['a selector with a semicolon', { selector: 's1;x' }],
    ['an authserv-id with a space', { authservId: 'gw example' }],
  ];
  for (const [what, change] of cases) {
    assert.throws(() => createLegacySigner({ ...BASE, ...change }), keyError, what);
  }
  // An Ed25519 key without ARC is fine.
  createLegacySigner({ ...BASE, arc: false, privateKeyPem: pem(ed.privateKey) });
});

test('signing failures are temporary NMTP_ERR_LEGACY_SIGN_FAILED', async () => {
  const signFailed = (err: unknown): boolean =>
    err instanceof NmtpError && err.code === 'NMTP_ERR_LEGACY_SIGN_FAILED' && err.temporary;
  const sign = createLegacySigner(BASE);
  // A CR or LF in the verdict text would write another header field.
  await assert.rejects(
    sign(converted(PEERS[0]!), { authResults: 'nmtp=pass\r\nBcc: x@y' }),
    signFailed,
  );
  // The key of an existing chain cannot be looked up now: retried, never sealed cv=fail.
  const sealed = await sign(converted(PEERS[0]!), { authResults: 'none' });
  const flaky = createLegacySigner({
    ...BASE,
    resolver: async () => {
      throw Object.assign(new Error('timeout'), { code: 'ETIMEOUT' });
    },
  });
  await assert.rejects(flaky(sealed, { authResults: 'none' }), signFailed);
});
