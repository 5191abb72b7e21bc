/**
 * The DSN service (src/gateway/dsn.ts), one rule at a time, over an in-memory double of the
 * queue port: it records what the service adds and hands back messages the test put there.
 * Every DSN produced is checked to be CRLF-clean, read back with our parser (parseDsn) and,
 * for a few, with python3's `email` package as an independent RFC 3464 reader.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { parseDsn } from '../../adapters/dsn/index.ts';
import { legacyToFramed } from '../../adapters/mime/index.ts';
import { bytesSource, type MessageSource } from '../../src/client/source.ts';
import { encodeMessage } from '../../src/core/frame/index.ts';
import type { View } from '../../src/core/session/index.ts';
import { createDsnService, relayHost, type DsnQueue } from '../../src/gateway/dsn.ts';
import {
  asJson,
  entryMeta,
  recipientMeta,
  type EntryMeta,
  type RecipientMeta,
} from '../../src/gateway/envelope.ts';
import { createGatewayLog } from '../../src/gateway/observe/log.ts';
import type { NewEntry } from '../../src/queue/port.ts';
import type { QueuedRecipient, QueuedSubmission } from '../../src/queue/types.ts';

const ARRIVAL = 1_800_000_000; // unix seconds
const MAX_AGE = 5 * 86400;
const HOUR = 3600;

const HEADERS = [
  'Received: from mx1.legacy.example ([192.0.2.7]) by gw.example.net',
  'From: Alice <alice@legacy.example>',
  'To: bob@nmtp.example',
  'Subject: Quarterly report',
  'Date: Sun, 29 Nov 2026 03:39:58 +0000',
  'Message-ID: <q3.report@legacy.example>',
  'MIME-Version: 1.0',
  'Content-Type: text/plain; charset=us-ascii',
  '',
  '',
].join('\r\n');
const ORIGINAL = Buffer.from(HEADERS + 'Hello Bob,\r\n\r\nthe report is attached in spirit.\r\n');

/** A legacy message in memory, `full` view only (what the queue gives for an 'smtp' entry). */
function rawSource(bytes: Uint8Array): MessageSource {
  const only = (v: View): void => assert.equal(v, 'full');
  return {
    size: bytes.length,
    layout: () => Promise.reject(new Error('not framed')),
    viewLength: async (v) => (only(v), bytes.length),
    async *pieces(v, max = 1000) {
      only(v);
      // Small pieces, each reused as the source contract allows: the reader must copy.
      const buf = new Uint8Array(max);
      for (let i = 0; i < bytes.length; i += max) {
        const n = Math.min(max, bytes.length - i);
        buf.set(bytes.subarray(i, i + n));
        yield buf.subarray(0, n);
      }
    },
  };
}

interface Added {
  readonly entry: QueuedSubmission;
  readonly message: Uint8Array;
  readonly meta: EntryMeta;
}

/** The queue port as far as the service uses it: add, get, message. */
class MemQueue implements DsnQueue {
  readonly added: Added[] = [];
  readonly entries = new Map<string, QueuedSubmission>();
  readonly messages = new Map<string, MessageSource>();
  /** When set, add() stores but then throws (a crash between store and answer). */
  failAfterStore = false;

  async add(n: NewEntry & { readonly message: Uint8Array }): Promise<QueuedSubmission> {
    if (this.entries.has(n.id)) throw new Error('duplicate id');
    const e: QueuedSubmission = {
      version: 1,
      id: n.id,
      user: n.user,
      created: ARRIVAL,
      expires: ARRIVAL + MAX_AGE,
      size: n.message.length,
      recipients: n.recipients.map((rcpt) => ({
        rcpt,
        state: 'pending',
        attempts: 0,
        polls: 0,
        nextAt: ARRIVAL,
      })),
      ...(n.kind === undefined ? {} : { kind: n.kind }),
      ...(n.meta === undefined ? {} : { meta: n.meta }),
    };
    this.entries.set(n.id, e);
    this.added.push({ entry: e, message: n.message, meta: entryMeta(n.meta)! });
    if (this.failAfterStore) throw new Error('connection lost after the store');
    return e;
  }
  async get(id: string): Promise<QueuedSubmission | undefined> {
    return this.entries.get(id);
  }
  async message(id: string): Promise<MessageSource | undefined> {
    return this.messages.get(id);
  }
}

type Rcpt = Partial<QueuedRecipient> &
  Pick<QueuedRecipient, 'rcpt' | 'state'> & { readonly m?: Partial<RecipientMeta> };

function entry(
  recipients: readonly Rcpt[],
  meta: Partial<EntryMeta> = {},
  kind: 'nmtp' | 'smtp' = 'nmtp',
): QueuedSubmission {
  const m: EntryMeta = {
    origin: 'smtp-in',
    mailFrom: 'alice@legacy.example',
    arrival: ARRIVAL,
    client: { ip: '192.0.2.7', helo: 'mx1.legacy.example' },
    trust: { authenticated: false, trustedRelay: true },
    headers: HEADERS,
    ...meta,
  };
  return {
    version: 1,
    id: 'QQ0123456789abcdefgh',
    user: m.mailFrom,
    created: ARRIVAL,
    expires: ARRIVAL + MAX_AGE,
    size: ORIGINAL.length,
    kind,
    meta: asJson(m),
    recipients: recipients.map(({ m: rm, ...r }) => ({
      attempts: 1,
      polls: 0,
      nextAt: ARRIVAL + 600,
      ...r,
      meta: asJson({ legacy: r.rcpt, ...rm }),
    })),
  };
}

const rejected = (rcpt: string, m: Partial<RecipientMeta> = {}): Rcpt => ({
  rcpt,
  state: 'rejected',
  last: { at: ARRIVAL + 310, code: 550, enhanced: '5.1.1', text: 'no such mailbox here' },
  m,
});

function setup(opts: { now?: number; smarthostReportsSuccess?: boolean } = {}) {
  const queue = new MemQueue();
  const lines: Record<string, unknown>[] = [];
  const log = createGatewayLog({
    strict: true,
    destination: {
      write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>),
    },
  });
  let now = (opts.now ?? ARRIVAL + 400) * 1000;
  const counted: string[] = [];
  const observe = createDsnService({
    queue: () => queue,
    hostname: 'gw.example.net',
    domain: 'example.net',
    delayWarning: 4 * HOUR,
    now: () => now,
    log,
    metrics: { dsn: (outcome, action) => void counted.push(`${outcome}:${action}`) },
    smarthost: 'smarthost.example.net',
    ...(opts.smarthostReportsSuccess === undefined
      ? {}
      : { smarthostReportsSuccess: opts.smarthostReportsSuccess }),
  });
  const events = (name: string) => lines.filter((l) => l['msg'] === name || l['event'] === name);
  return {
    queue,
    observe,
    lines,
    events,
    counted,
    setNow: (sec: number) => void (now = sec * 1000),
  };
}

/** RFC 5322 line ends only: no bare CR or LF, no NUL; lines ≤ 998 octets. */
function assertCrlfClean(b: Uint8Array): void {
  const s = Buffer.from(b).toString('latin1');
  assert.ok(!s.includes('\0'), 'NUL in DSN');
  assert.equal(s.replace(/\r\n/g, '').match(/[\r\n]/), null, 'bare CR or LF in DSN');
  for (const line of s.split('\r\n')) assert.ok(line.length <= 998);
}

function onlyDsn(q: MemQueue): Added {
  assert.equal(q.added.length, 1, `DSNs queued: ${q.added.length}`);
  const a = q.added[0]!;
  assertCrlfClean(a.message);
  return a;
}

const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');
const rmeta = (s: QueuedSubmission | undefined, i: number) =>
  recipientMeta(s!.recipients[i]!.meta)!;

test('a rejected recipient gets one failed DSN, queued to the return path with <>', async () => {
  const { queue, observe, events, counted } = setup();
  const s = entry(
    [rejected('bob@nmtp.example', { orcpt: { type: 'rfc822', address: 'bob@nmtp.example' } })],
    {
      envid: 'QQ314159',
    },
  );
  const out = await observe(s);
  const a = onlyDsn(queue);
  // The DSN entry: null reverse-path, to the original MAIL FROM, delivered by SMTP.
  assert.equal(a.entry.user, '');
  assert.deepEqual(
    a.entry.recipients.map((r) => r.rcpt),
    ['alice@legacy.example'],
  );
  assert.equal(a.entry.kind, 'smtp');
  assert.equal(a.meta.origin, 'dsn');
  assert.equal(a.meta.mailFrom, '');
  assert.match(a.entry.id, /^QQ0123456789abcdefgh-d[0-9a-f]{12}$/);
  const p = parseDsn(a.message);
  assert.equal(p.envid, 'QQ314159');
  assert.equal(p.reportingMta, 'gw.example.net');
  assert.equal(p.receivedFromMta, 'mx1.legacy.example');
  assert.equal(p.arrivalDate?.getTime(), ARRIVAL * 1000);
  assert.equal(p.outcomes.length, 1);
  const o = p.outcomes[0]!;
  assert.equal(o.action, 'failed');
  assert.equal(o.status, '5.1.1');
  assert.equal(o.recipient.legacy, 'bob@nmtp.example');
  assert.deepEqual(o.originalRecipient, { addrType: 'rfc822', address: 'bob@nmtp.example' });
  assert.deepEqual(o.diagnostic, { type: 'nmtp', text: '5.1.1 no such mailbox here' });
  assert.equal(o.lastAttempt?.getTime(), (ARRIVAL + 310) * 1000);
  // RET absent: the headers only.
  assert.equal(p.returned?.type, 'text/rfc822-headers');
  assert.match(text(a.message), /^To: <alice@legacy\.example>\r\n/m);
  assert.match(text(a.message), /^Subject: Undelivered Mail Returned to Sender\r\n/m);
  assert.ok(!text(a.message).includes('attached in spirit'));
  // The entry comes back with the recipient reported.
  assert.equal(rmeta(out, 0).reported, true);
  assert.deepEqual(
    events('dsn.queued').map((l) => [
      l['queueId'],
      l['origQueueId'],
      l['action'],
      l['rcpt'],
      l['rcpts'],
    ]),
    [[a.entry.id, s.id, 'failed', 'alice@legacy.example', 1]],
  );
  assert.deepEqual(counted, ['queued:failed']);
});

test('accepted: "relayed" only with NOTIFY=SUCCESS; otherwise reported without a DSN', async () => {
  const accepted = (rcpt: string, notify?: string): Rcpt => ({
    rcpt,
    state: 'accepted',
    id: 'R-77',
    last: { at: ARRIVAL + 300, code: 250, enhanced: '2.0.0', text: 'accepted' },
    m: notify === undefined ? {} : { notify },
  });
  {
    const { queue, observe } = setup();
    const out = await observe(entry([accepted('bob@nmtp.example', 'SUCCESS,FAILURE')]));
    const p = parseDsn(onlyDsn(queue).message);
    const o = p.outcomes[0]!;
    // NMTP acceptance is "relayed" (RFC 3464 §2.3.3, §52.3): NMTP sends no success DSNs.
    assert.equal(o.action, 'relayed');
    assert.equal(o.status, '2.0.0');
    assert.equal(o.finalLogId, 'R-77');
    assert.equal(rmeta(out, 0).reported, true);
    assert.match(text(onlyDsn(queue).message), /^Subject: Successful Mail Delivery Report\r\n/m);
  }
  {
    const { queue, observe, events } = setup();
    const out = await observe(entry([accepted('bob@nmtp.example')]));
    assert.equal(queue.added.length, 0);
    assert.equal(rmeta(out, 0).reported, true);
    // NOTIFY absent: success is silent, not even a suppressed line.
    assert.equal(events('dsn.suppressed').length, 0);
    // Observed again (stored state): nothing to do.
    assert.equal(await observe(out!), undefined);
  }
});

test('one "delayed" DSN per message once delayWarning has passed, with Will-Retry-Until', async () => {
  const { queue, observe, setNow } = setup({ now: ARRIVAL + 3 * HOUR });
  const s = entry([
    {
      rcpt: 'bob@nmtp.example',
      state: 'pending',
      attempts: 3,
      last: { at: ARRIVAL + 2 * HOUR, code: 451, enhanced: '4.4.0', text: 'connection refused' },
    },
    {
      rcpt: 'carol@nmtp.example',
      state: 'deferred',
      cookie: 'c00kie',
      min: 60,
      max: 3600,
      cookieExpires: ARRIVAL + 2 * 86400,
      endpoint: { host: 'mx.nmtp.example', port: 4025 },
      last: { at: ARRIVAL + 60, code: 350, enhanced: '4.2.0', text: 'held for review' },
    },
    { rcpt: 'dave@nmtp.example', state: 'pending', m: { notify: 'FAILURE' } },
  ]);
  // Before the warning time: nothing.
  assert.equal(await observe(s), undefined);
  setNow(ARRIVAL + 4 * HOUR + 1);
  const out = await observe(s);
  const a = onlyDsn(queue);
  const p = parseDsn(a.message);
  assert.deepEqual(
    p.outcomes.map((o) => [o.recipient.legacy, o.action, o.status]),
    [
      ['bob@nmtp.example', 'delayed', '4.4.0'],
      ['carol@nmtp.example', 'delayed', '4.2.0'],
    ],
  );
  assert.equal(p.outcomes[0]!.willRetryUntil?.getTime(), (ARRIVAL + MAX_AGE) * 1000);
  // The cookie's expiry comes first for carol; the cookie itself is never shown (§52.6).
  assert.equal(p.outcomes[1]!.willRetryUntil?.getTime(), (ARRIVAL + 2 * 86400) * 1000);
  assert.equal(p.outcomes[1]!.remoteMta, 'mx.nmtp.example');
  assert.ok(!text(a.message).includes('c00kie'));
  assert.match(text(a.message), /^Subject: Delayed Mail \(still being retried\)\r\n/m);
  // The entry says a delay was reported; no recipient is final, so none is "reported".
  assert.equal(entryMeta(out!.meta)!.delayReported, true);
  for (let i = 0; i < 3; i++) assert.equal(rmeta(out, i).reported, undefined);
  // Later changes: no second warning.
  setNow(ARRIVAL + 9 * HOUR);
  assert.equal(await observe(out!), undefined);
  assert.equal(queue.added.length, 1);
});

test('failed, then a later final answer: separate DSNs with distinct ids', async () => {
  const { queue, observe } = setup();
  const s = entry([
    rejected('bob@nmtp.example'),
    { rcpt: 'carol@nmtp.example', state: 'pending', m: { notify: 'SUCCESS,FAILURE' } },
  ]);
  const out = await observe(s);
  assert.equal(queue.added.length, 1);
  assert.equal(rmeta(out, 0).reported, true);
  assert.equal(rmeta(out, 1).reported, undefined);
  const later: QueuedSubmission = {
    ...out!,
    recipients: out!.recipients.map((r, i) =>
      i === 1 ? { ...r, state: 'accepted', id: 'R-9', last: { at: ARRIVAL + 900, code: 250 } } : r,
    ),
  };
  const out2 = await observe(later);
  assert.equal(queue.added.length, 2);
  assert.notEqual(queue.added[0]!.entry.id, queue.added[1]!.entry.id);
  assert.deepEqual(
    parseDsn(queue.added[1]!.message).outcomes.map((o) => [o.recipient.legacy, o.action]),
    [['carol@nmtp.example', 'relayed']],
  );
  assert.equal(rmeta(out2, 1).reported, true);
});

test('recipients that become reportable in one change share one DSN', async () => {
  const { queue, observe } = setup();
  const out = await observe(
    entry([
      rejected('bob@nmtp.example'),
      rejected('carol@nmtp.example'),
      { rcpt: 'erin@nmtp.example', state: 'accepted', m: { notify: 'SUCCESS' } },
      { rcpt: 'frank@nmtp.example', state: 'pending' },
    ]),
  );
  const p = parseDsn(onlyDsn(queue).message);
  assert.deepEqual(
    p.outcomes.map((o) => [o.recipient.legacy, o.action]),
    [
      ['bob@nmtp.example', 'failed'],
      ['carol@nmtp.example', 'failed'],
      ['erin@nmtp.example', 'relayed'],
    ],
  );
  assert.deepEqual(
    out!.recipients.map((r) => recipientMeta(r.meta)!.reported),
    [true, true, true, undefined],
  );
});

test('the same state observed twice (or after a crash) queues one DSN', async () => {
  const { queue, observe } = setup();
  const s = entry([rejected('bob@nmtp.example')]);
  const a = await observe(s);
  const b = await observe(s);
  assert.equal(queue.added.length, 1);
  assert.deepEqual(a, b);
  // A crash after the DSN was stored but before the answer: seen again, still one DSN.
  const q2 = setup();
  q2.queue.failAfterStore = true;
  const c = await q2.observe(s);
  assert.equal(q2.queue.added.length, 1);
  q2.queue.failAfterStore = false;
  assert.deepEqual(await q2.observe(s), c);
  assert.equal(q2.queue.added.length, 1);
});

test('a queue that cannot store: the observer fails and nothing is marked reported', async () => {
  const { queue, observe } = setup();
  queue.add = async () => {
    throw new Error('disk full');
  };
  await assert.rejects(observe(entry([rejected('bob@nmtp.example')])), /disk full/);
});

test('NOTIFY=NEVER, or without FAILURE: no DSN, reported, logged', async () => {
  for (const notify of ['NEVER', 'SUCCESS,DELAY', 'never']) {
    const { queue, observe, events, counted } = setup();
    const out = await observe(entry([rejected('bob@nmtp.example', { notify })]));
    assert.equal(queue.added.length, 0, notify);
    assert.equal(rmeta(out, 0).reported, true);
    const [line] = events('dsn.suppressed');
    assert.equal(line?.['rcpt'], 'bob@nmtp.example');
    assert.match(String(line?.['why']), /^NOTIFY=/);
    assert.deepEqual(counted, ['suppressed:failed']);
  }
});

test('the null sender never gets a DSN', async () => {
  const { queue, observe, events } = setup();
  const out = await observe(entry([rejected('bob@nmtp.example')], { mailFrom: '' }));
  assert.equal(queue.added.length, 0);
  assert.equal(rmeta(out, 0).reported, true);
  assert.match(String(events('dsn.suppressed')[0]?.['why']), /^null reverse-path; 5\.1\.1/);
});

test('backscatter rule: an unbelieved return path gets no DSN; SPF pass or AUTH does', async () => {
  const untrusted = { authenticated: false, trustedRelay: false };
  {
    const { queue, observe, events, counted } = setup();
    const out = await observe(entry([rejected('bob@nmtp.example')], { trust: untrusted }));
    assert.equal(queue.added.length, 0);
    assert.equal(rmeta(out, 0).reported, true);
    const line = events('dsn.suppressed')[0]!;
    assert.equal(line['origQueueId'], 'QQ0123456789abcdefgh');
    assert.equal(line['action'], 'failed');
    assert.match(String(line['why']), /backscatter.*5\.1\.1 no such mailbox here/);
    assert.deepEqual(counted, ['suppressed:failed']);
  }
  {
    // DMARC alone would not do; DKIM of a parent domain of the return path does.
    const { queue, observe } = setup();
    await observe(
      entry([rejected('bob@nmtp.example')], {
        trust: { ...untrusted, dkimPassDomains: ['legacy.example'] },
      }),
    );
    assert.equal(queue.added.length, 1);
  }
  for (const trust of [
    { ...untrusted, spf: 'pass' },
    { ...untrusted, authenticated: true },
  ]) {
    const { queue, observe } = setup();
    await observe(entry([rejected('bob@nmtp.example')], { trust }));
    assert.equal(queue.added.length, 1);
  }
  // No trust facts at all: not believed.
  const { queue, observe } = setup();
  const s = entry([rejected('bob@nmtp.example')]);
  const m = { ...entryMeta(s.meta)! } as Record<string, unknown>;
  delete m['trust'];
  await observe({ ...s, meta: m as never });
  assert.equal(queue.added.length, 0);
});

test('never about a DSN, nor about an entry smtp-in did not make', async () => {
  const { queue, observe } = setup();
  assert.equal(
    await observe(entry([rejected('bob@nmtp.example')], { origin: 'dsn', mailFrom: '' })),
    undefined,
  );
  const s = entry([rejected('bob@nmtp.example')]);
  const noMeta: QueuedSubmission = { ...s };
  delete (noMeta as { meta?: unknown }).meta;
  assert.equal(await observe(noMeta), undefined);
  assert.equal(queue.added.length, 0);
});

test('recipients answered in the SMTP session (LMTP) are never reported again', async () => {
  const { queue, observe } = setup();
  assert.equal(await observe(entry([rejected('bob@nmtp.example', { answered: true })])), undefined);
  assert.equal(queue.added.length, 0);
});

test('given up at the maximum age, or a cookie ended: failed 5.4.7 with the last answer', async () => {
  const { queue, observe } = setup({ now: ARRIVAL + MAX_AGE });
  await observe(
    entry([
      {
        rcpt: 'bob@nmtp.example',
        state: 'given-up',
        attempts: 40,
        last: {
          at: ARRIVAL + MAX_AGE - 100,
          code: 451,
          enhanced: '4.4.0',
          text: 'connection refused',
        },
      },
      {
        rcpt: 'carol@nmtp.example',
        state: 'given-up',
        cookie: 'c00kie',
        cookieExpires: ARRIVAL + 86400,
        last: { at: ARRIVAL + 86400, code: 250, enhanced: '2.0.0', text: 'given up' },
      },
      {
        rcpt: 'dave@nmtp.example',
        state: 'given-up',
        cookie: 'c00kie2',
        last: { at: ARRIVAL + MAX_AGE, text: 'no answer' },
      },
    ]),
  );
  const p = parseDsn(onlyDsn(queue).message);
  assert.deepEqual(
    p.outcomes.map((o) => [o.action, o.status, o.diagnostic?.text]),
    [
      ['failed', '5.4.7', '5.4.7 delivery time expired, last answer: 451 4.4.0 connection refused'],
      ['failed', '5.4.7', '5.4.7 cookie expired'],
      ['failed', '5.4.7', '5.4.7 GIVEUP sent at the maximum queue age'],
    ],
  );
  assert.ok(p.outcomes.every((o) => o.willRetryUntil === undefined));
  assert.ok(!text(onlyDsn(queue).message).includes('c00kie'));
});

test('unknown or missing statuses: temporary while pending, never invented as permanent', async () => {
  const { queue, observe } = setup({ now: ARRIVAL + 5 * HOUR });
  await observe(
    entry([
      // A pending recipient whose last answer claimed a permanent code (or none at all).
      {
        rcpt: 'bob@nmtp.example',
        state: 'pending',
        last: { at: ARRIVAL, code: 421, enhanced: '5.1.1', text: 'odd' },
      },
      {
        rcpt: 'carol@nmtp.example',
        state: 'pending',
        last: { at: ARRIVAL, text: 'Error: socket hang up' },
      },
      { rcpt: 'dave@nmtp.example', state: 'pending' },
      // Rejected without an enhanced code: the state is final, the status the generic 5.0.0.
      {
        rcpt: 'erin@nmtp.example',
        state: 'rejected',
        last: { at: ARRIVAL, code: 550, text: 'no' },
      },
      // Rejected with a temporary-looking code: final all the same, generic 5.0.0.
      {
        rcpt: 'frank@nmtp.example',
        state: 'rejected',
        last: { at: ARRIVAL, code: 554, enhanced: '4.2.2', text: 'full' },
      },
    ]),
  );
  const p = parseDsn(onlyDsn(queue).message);
  assert.deepEqual(
    p.outcomes.map((o) => [o.recipient.legacy, o.action, o.status]),
    [
      ['erin@nmtp.example', 'failed', '5.0.0'],
      ['frank@nmtp.example', 'failed', '5.0.0'],
      ['bob@nmtp.example', 'delayed', '4.0.0'],
      ['carol@nmtp.example', 'delayed', '4.0.0'],
      ['dave@nmtp.example', 'delayed', '4.0.0'],
    ],
  );
  assert.equal(p.outcomes[3]!.diagnostic?.text, 'Error: socket hang up');
  assert.equal(p.outcomes[4]!.diagnostic, undefined);
});

test('recipients routed to SMTP: diagnostics as smtp; success left to the smarthost', async () => {
  const smtpEntry = (state: 'accepted' | 'rejected', notify?: string) =>
    entry(
      [
        {
          rcpt: 'zoe@legacy3.example',
          state,
          last:
            state === 'accepted'
              ? { at: ARRIVAL + 5, code: 250, enhanced: '2.0.0', text: '250 Ok: queued as 4XyZ' }
              : {
                  at: ARRIVAL + 5,
                  code: 550,
                  enhanced: '5.1.1',
                  text: '550 <zoe@legacy3.example>: Recipient address rejected',
                },
          m: notify === undefined ? {} : { notify },
        },
      ],
      {},
      'smtp',
    );
  {
    const { queue, observe } = setup();
    await observe(smtpEntry('rejected'));
    const o = parseDsn(onlyDsn(queue).message).outcomes[0]!;
    assert.equal(o.action, 'failed');
    assert.equal(o.status, '5.1.1');
    assert.equal(o.remoteMta, 'smarthost.example.net');
    assert.deepEqual(o.diagnostic, {
      type: 'smtp',
      text: '550 5.1.1 <zoe@legacy3.example>: Recipient address rejected',
    });
  }
  {
    // Toward MX hosts: Remote-MTA is the MX host that answered, as the deliverer recorded it.
    const { queue, observe } = setup();
    const e = smtpEntry('rejected');
    const r0 = e.recipients[0]!;
    await observe({
      ...e,
      recipients: [{ ...r0, last: { ...r0.last!, relay: 'mx2.legacy3.example[192.0.2.7]:25' } }],
    });
    assert.equal(parseDsn(onlyDsn(queue).message).outcomes[0]!.remoteMta, 'mx2.legacy3.example');
  }
  {
    // The smarthost (Postfix) offers DSN and got NOTIFY=SUCCESS: it reports, we do not.
    const { queue, observe } = setup();
    const out = await observe(smtpEntry('accepted', 'SUCCESS'));
    assert.equal(queue.added.length, 0);
    assert.equal(rmeta(out, 0).reported, true);
  }
  {
    const { queue, observe } = setup({ smarthostReportsSuccess: false });
    await observe(smtpEntry('accepted', 'SUCCESS'));
    const o = parseDsn(onlyDsn(queue).message).outcomes[0]!;
    assert.deepEqual(
      [o.action, o.status, o.diagnostic?.text],
      ['relayed', '2.0.0', '250 2.0.0 Ok: queued as 4XyZ'],
    );
  }
});

test('RET=FULL returns the whole original when small enough and still queued', async () => {
  // An 'smtp' entry: the queue holds the legacy octets.
  {
    const { queue, observe } = setup();
    const s = entry([rejected('zoe@legacy3.example')], { ret: 'FULL' }, 'smtp');
    queue.messages.set(s.id, rawSource(ORIGINAL));
    await observe(s);
    const a = onlyDsn(queue);
    assert.equal(parseDsn(a.message).returned?.type, 'message/rfc822');
    assert.ok(Buffer.from(a.message).includes(ORIGINAL));
    assert.match(text(a.message), /Content-Transfer-Encoding: 7bit/);
  }
  // An 'nmtp' entry: the framed message goes back to legacy form (§51).
  {
    const { queue, observe } = setup();
    const s = entry([rejected('bob@nmtp.example')], { ret: 'FULL' });
    const { message } = await legacyToFramed(ORIGINAL, {
      gateway: 'gw.example.net',
      now: ARRIVAL * 1000,
    });
    queue.messages.set(s.id, bytesSource(encodeMessage(message)));
    await observe(s);
    const a = onlyDsn(queue);
    const p = parseDsn(a.message);
    assert.equal(p.returned?.type, 'message/rfc822');
    assert.equal(p.returned?.messageId, '<q3.report@legacy.example>');
    assert.match(text(a.message), /Subject: Quarterly report/);
    assert.match(text(a.message), /the report is attached in spirit\./);
  }
});

/** The test message grown to exactly `n` octets with lines of x (CRLF every 78 octets). */
function ofSize(n: number): Buffer {
  const line = 'x'.repeat(76) + '\r\n';
  let body = line.repeat(Math.floor((n - HEADERS.length) / line.length));
  body += 'x'.repeat(n - HEADERS.length - body.length - 2) + '\r\n';
  const b = Buffer.from(HEADERS + body);
  assert.equal(b.length, n);
  return b;
}

test('RET=FULL falls back to the headers: too large, message gone, or nothing failed', async () => {
  const big = ofSize(50_001);
  const cases: [string, (q: MemQueue, id: string) => void, Rcpt][] = [
    [
      'over 50 000 octets',
      (q, id) => q.messages.set(id, rawSource(big)),
      rejected('zoe@legacy3.example'),
    ],
    ['no longer queued', () => undefined, rejected('zoe@legacy3.example')],
    [
      'success only',
      (q, id) => q.messages.set(id, rawSource(ORIGINAL)),
      {
        rcpt: 'zoe@legacy3.example',
        state: 'accepted',
        last: { at: ARRIVAL, code: 250, text: '250 ok' },
        m: { notify: 'SUCCESS' },
      },
    ],
  ];
  for (const [name, put, r] of cases) {
    const { queue, observe } = setup({ smarthostReportsSuccess: false });
    const s = entry([r], { ret: 'FULL' }, 'smtp');
    put(queue, s.id);
    await observe(s);
    const a = onlyDsn(queue);
    assert.equal(parseDsn(a.message).returned?.type, 'text/rfc822-headers', name);
    assert.ok(!text(a.message).includes('xxxxxxxx'), name);
    assert.match(text(a.message), /Subject: Quarterly report/, name);
  }
  // Exactly the limit is still returned whole.
  const exact = ofSize(50_000);
  const { queue, observe } = setup();
  const s = entry([rejected('zoe@legacy3.example')], { ret: 'FULL' }, 'smtp');
  queue.messages.set(s.id, rawSource(exact));
  await observe(s);
  assert.equal(parseDsn(onlyDsn(queue).message).returned?.type, 'message/rfc822');
});

test('a UTF-8 return path makes an RFC 6533 DSN that asks for SMTPUTF8 and 8BITMIME', async () => {
  const { queue, observe } = setup();
  await observe(
    entry([rejected('björn@nmtp.example')], {
      mailFrom: 'ålice@légacy.example',
      smtputf8: true,
      trust: { authenticated: true, trustedRelay: false },
    }),
  );
  const a = onlyDsn(queue);
  assert.deepEqual(
    a.entry.recipients.map((r) => r.rcpt),
    ['ålice@légacy.example'],
  );
  assert.equal(a.meta.smtputf8, true);
  assert.equal(a.meta.eightBit, true);
  const p = parseDsn(a.message);
  assert.equal(p.global, true);
  assert.equal(p.outcomes[0]!.recipient.legacy, 'björn@nmtp.example');
  assert.match(text(a.message), /report-type=global-delivery-status/);
  // An ASCII DSN asks for neither.
  const q2 = setup();
  await q2.observe(entry([rejected('bob@nmtp.example')]));
  assert.equal(onlyDsn(q2.queue).meta.smtputf8, undefined);
  assert.equal(onlyDsn(q2.queue).meta.eightBit, undefined);
});

test('a return path no report can be written to: logged, reported, not retried forever', async () => {
  const { queue, observe, events } = setup();
  const out = await observe(
    entry([rejected('bob@nmtp.example')], {
      mailFrom: '"john doe"@legacy.example',
      trust: { authenticated: true, trustedRelay: false },
    }),
  );
  assert.equal(queue.added.length, 0);
  assert.equal(rmeta(out, 0).reported, true);
  assert.match(String(events('dsn.suppressed')[0]?.['why']), /NMTP_ERR_DSN_BAD_FIELD/);
});

const PYTHON = String.raw`
import sys, json, email
from email import policy
from email.parser import HeaderParser
msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.default)
out = {"type": msg.get_content_type(), "report_type": msg.get_param("report-type"),
       "to": str(msg["To"]), "auto": str(msg["Auto-Submitted"]),
       "defects": [type(d).__name__ for d in msg.defects], "parts": [], "groups": []}
for part in msg.iter_parts():
    out["parts"].append(part.get_content_type())
    out["defects"] += [type(d).__name__ for d in part.defects]
    ct = part.get_content_type()
    if ct == "message/delivery-status":
        out["groups"] = [dict((k, str(v)) for k, v in g.items()) for g in part.get_payload()]
    elif ct == "message/global-delivery-status":
        first = part.get_payload(0)
        rest = first.get_payload(decode=True).decode("utf-8")
        blocks = [b for b in rest.replace("\r\n", "\n").split("\n\n") if b.strip()]
        out["groups"] = [dict((k, str(v)) for k, v in first.items())] + [
            dict((k, str(v)) for k, v in HeaderParser(policy=policy.default).parsestr(b).items()) for b in blocks]
print(json.dumps(out, ensure_ascii=False))
`;

function python(bytes: Uint8Array): {
  type: string;
  report_type: string;
  to: string;
  auto: string;
  defects: string[];
  parts: string[];
  groups: Record<string, string>[];
} {
  const r = spawnSync('python3', ['-c', PYTHON], { input: bytes, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as ReturnType<typeof python>;
}

test("python3's email package reads the DSNs as RFC 3464 reports", async () => {
  {
    const { queue, observe } = setup();
    await observe(
      entry(
        [
          rejected('bob@nmtp.example'),
          { rcpt: 'carol@nmtp.example', state: 'accepted', id: 'R-1', m: { notify: 'SUCCESS' } },
        ],
        {
          envid: 'QQ314159',
        },
      ),
    );
    const p = python(onlyDsn(queue).message);
    assert.equal(p.type, 'multipart/report');
    assert.equal(p.report_type, 'delivery-status');
    assert.equal(p.to, 'alice@legacy.example');
    assert.equal(p.auto, 'auto-replied');
    assert.deepEqual(p.defects, []);
    assert.deepEqual(p.parts, ['text/plain', 'message/delivery-status', 'text/rfc822-headers']);
    assert.equal(p.groups[0]!['Original-Envelope-Id'], 'QQ314159');
    assert.equal(p.groups[0]!['Reporting-MTA'], 'dns; gw.example.net');
    assert.deepEqual(
      p.groups.slice(1).map((g) => [g['Final-Recipient'], g['Action'], g['Status']]),
      [
        ['rfc822; bob@nmtp.example', 'failed', '5.1.1'],
        ['rfc822; carol@nmtp.example', 'relayed', '2.0.0'],
      ],
    );
  }
  {
    const { queue, observe } = setup();
    await observe(
      entry([rejected('björn@nmtp.example')], {
        mailFrom: 'ålice@légacy.example',
        trust: { authenticated: true, trustedRelay: false },
      }),
    );
    const p = python(onlyDsn(queue).message);
    assert.equal(p.report_type, 'global-delivery-status');
    assert.deepEqual(p.defects, []);
    assert.deepEqual(p.parts, [
      'text/plain',
      'message/global-delivery-status',
      'text/rfc822-headers',
    ]);
    assert.deepEqual(
      p.groups.slice(1).map((g) => [g['Final-Recipient'], g['Action'], g['Status']]),
      [['utf-8; björn@nmtp.example', 'failed', '5.1.1']],
    );
  }
});

test('relayHost: the host of a relay the SMTP deliverer recorded', () => {
  assert.equal(relayHost(undefined), undefined);
  assert.equal(relayHost('smarthost.example.net:25'), 'smarthost.example.net');
  assert.equal(relayHost('127.0.0.1:10025'), '127.0.0.1');
  assert.equal(relayHost('in.mx.example[192.0.2.1]:25'), 'in.mx.example');
  assert.equal(relayHost('[192.0.2.1]:25'), '192.0.2.1');
  assert.equal(relayHost('mx6.example[2001:db8::1]:25'), 'mx6.example');
  assert.equal(relayHost('::1:25'), '::1');
});
