/**
 * The queue port's contract (src/queue/port.ts): one suite every backend runs — the
 * embedded queue (test/queue/embedded.contract.test.ts) and BullMQ on Redis
 * (test/adapters/bullmq/…). Scripted deliverers, no network; real time with intervals of
 * one second (BullMQ's delays run on Redis's clock, so no test moves a clock by hand).
 *
 * How a backend plugs in:
 *
 *     queueContract('embedded', make, reopen?, hooks?)
 *
 *   - `make(o)`: a new backend with options `o`, over the storage named `o.dirOrPrefix` — a
 *     name the contract makes unique per test ([a-z0-9-], under 40 characters); the factory
 *     maps it to a directory or a Redis key prefix. The contract never removes storage.
 *   - `reopen(o)` (default `make`): the same, over storage a backend used before — a restart.
 *     The contract closes the old backend first, or crashes it (below).
 *   - `hooks.crash(b)` (default: nothing): stop `b` as a dying process would: it must commit
 *     nothing more, and what it was doing must fall to the next backend over the same
 *     storage (BullMQ: close the worker without waiting and let its lock expire). The
 *     contract hangs the crashed backend's delivery forever, so it cannot commit anyway.
 *   - `hooks.patienceMs` (default 20 s): how long an expected change may take before the
 *     test fails (not a timing assertion: a bound so a bug fails instead of hanging).
 *
 * What the port leaves open and the contract pins down: `list()` is in the order of add();
 * `add()` is a change the observer sees (so it sees 'pending'); what an observer returns is
 * taken for meta only; `delete()` of an entry in a pass does not wait for the pass (an
 * observer may delete its own entry) and the job in progress can still read the message;
 * an 'smtp' entry's message is handed over as stored (`pieces('full')`, not decoded), its
 * due recipients in one transaction.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeMessage } from '../../src/core/frame/index.ts';
import { NmtpError } from '../../src/core/errors/index.ts';
import type { Reply } from '../../src/core/wire/index.ts';
import { announce, type MessageSource } from '../../src/client/source.ts';
import type { JobResult } from '../../src/client/transfer.ts';
import type {
  Json,
  QueueBackend,
  QueueBackendOptions,
  QueueObserver,
  SmtpDeliverFn,
  SmtpDeliverOutcome,
  SmtpDeliverRequest,
} from '../../src/queue/port.ts';
import type { DeliverFn, DeliverRequest } from '../../src/queue/queue.ts';
import type { QueuedSubmission } from '../../src/queue/types.ts';

export interface ContractOptions extends QueueBackendOptions {
  /** The storage: unique per test; the factory makes it a directory or a key prefix. */
  readonly dirOrPrefix: string;
}

export type MakeBackend = (o: ContractOptions) => Promise<QueueBackend>;

export interface ContractHooks {
  readonly crash?: (b: QueueBackend) => Promise<void>;
  readonly patienceMs?: number;
}

const FAST = { initial: 1, factor: 1, maxInterval: 1, maxAge: 600 } as const;
const SLOW = { initial: 3600, factor: 1, maxInterval: 3600, maxAge: 86400 } as const;
const USER = 'alice@example.org';

const frame = (text: string): Uint8Array =>
  encodeMessage({
    trace: [],
    root: {
      fields: [{ name: 'From', value: `<${USER}>` }],
      body: new TextEncoder().encode(text),
    },
  });

/** A legacy message: not framed, so only an 'smtp' entry can carry it. */
const legacy = (text: string): Uint8Array =>
  new TextEncoder().encode(
    `From: <${USER}>\r\nTo: <bob@legacy.example>\r\nSubject: ${text}\r\n\r\n${text}\r\n`,
  );

const reply = (code: number, params: Record<string, string> = {}, enhanced?: string): Reply => ({
  code,
  enhanced: enhanced ?? `${String(code)[0]}.0.0`,
  params,
  text: '',
});
const endpoint = { host: 'mx.example.net', port: 4025 };
const answers = (...rs: [string, Reply][]): JobResult => ({
  endpoint,
  recipients: rs.map(([rcpt, r]) => ({ rcpt, reply: r })),
});
const accept = (rcpt: string): [string, Reply] => [rcpt, reply(250, { rcpt, id: `id-${rcpt}` })];
const unreachable = (): NmtpError =>
  new NmtpError('NMTP_ERR_TRANSPORT_CONNECT_FAILED', 'connection refused');

async function bytesOf(m: MessageSource): Promise<Uint8Array> {
  const out: Uint8Array[] = [];
  for await (const p of m.pieces('full')) out.push(Uint8Array.from(p));
  return new Uint8Array(Buffer.concat(out));
}

const rcptsOf = (r: DeliverRequest): readonly string[] =>
  r.job.kind === 'deliver' ? r.job.recipients : r.rcpt === undefined ? [] : [r.rcpt];

const noDeliver: DeliverFn = () => Promise.reject(new Error('no NMTP delivery expected'));

/** A promise that never settles: a delivery that a crash cut off. */
const forever = <T>(): Promise<T> => new Promise<T>(() => undefined);

/** Deliveries held until the test lets them go. */
class Gate<T> {
  readonly waiting: { readonly key: string; readonly go: () => void }[] = [];
  private opened = false;
  private seen = 0;
  private max = new Map<string, number>();
  private now = new Map<string, number>();

  async pass(key: string, f: () => Promise<T> | T): Promise<T> {
    const n = (this.now.get(key) ?? 0) + 1;
    this.now.set(key, n);
    this.max.set(key, Math.max(n, this.max.get(key) ?? 0));
    this.seen++;
    try {
      if (!this.opened) await new Promise<void>((go) => this.waiting.push({ key, go }));
      return await f();
    } finally {
      this.now.set(key, (this.now.get(key) ?? 1) - 1);
    }
  }
  get arrived(): number {
    return this.seen;
  }
  inFlight(key?: string): number {
    if (key !== undefined) return this.now.get(key) ?? 0;
    return [...this.now.values()].reduce((a, b) => a + b, 0);
  }
  maxOf(key: string): number {
    return this.max.get(key) ?? 0;
  }
  maxTotal(): number {
    return [...this.max.values()].reduce((a, b) => Math.max(a, b), 0);
  }
  releaseOne(): boolean {
    const w = this.waiting.shift();
    w?.go();
    return w !== undefined;
  }
  /** Lets everything through from now on (also how a test cleans up). */
  open(): void {
    this.opened = true;
    while (this.releaseOne());
  }
}

export function queueContract(
  name: string,
  make: MakeBackend,
  reopen: MakeBackend = make,
  hooks: ContractHooks = {},
): void {
  const patience = hooks.patienceMs ?? 20_000;
  let n = 0;
  const storage = (): string => `qc-${(n++).toString(36)}-${randomBytes(6).toString('hex')}`;

  async function until(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
    const deadline = Date.now() + patience;
    while (!(await check())) {
      if (Date.now() > deadline)
        throw new Error(`${name}: still not true after ${patience} ms: ${what}`);
      await sleep(10);
    }
  }
  const entry = async (b: QueueBackend, id: string): Promise<QueuedSubmission> => {
    const s = await b.get(id);
    assert.ok(s !== undefined, `${id} is in the queue`);
    return s;
  };
  const done = async (b: QueueBackend, id: string): Promise<QueuedSubmission> => {
    await until(async () => (await b.get(id))?.done !== undefined, `${id} is done`);
    return entry(b, id);
  };
  const states = (s: QueuedSubmission): string[] => s.recipients.map((r) => r.state);

  /** Backends a test opened, closed at its end (after every gate is opened). */
  function harness() {
    const open = new Set<QueueBackend>();
    const gates: Gate<unknown>[] = [];
    return {
      async make(o: ContractOptions, again = false): Promise<QueueBackend> {
        const b = await (again ? reopen : make)(o);
        open.add(b);
        return b;
      },
      async close(b: QueueBackend): Promise<void> {
        open.delete(b);
        await b.close();
      },
      async crash(b: QueueBackend): Promise<void> {
        open.delete(b);
        await hooks.crash?.(b);
      },
      gate<T>(): Gate<T> {
        const g = new Gate<T>();
        gates.push(g as Gate<unknown>);
        return g;
      },
      async end(): Promise<void> {
        for (const g of gates) g.open();
        for (const b of open) await b.close();
      },
    };
  }

  describe(`queue contract: ${name}`, () => {
    test('add() is durable: the entry and its message survive a restart', async () => {
      const h = harness();
      try {
        const dirOrPrefix = storage();
        const message = frame('durable');
        const o = { dirOrPrefix, retry: SLOW, deliver: () => Promise.reject(unreachable()) };
        const b = await h.make(o);
        const s = await b.add({
          id: 'dur-1',
          user: USER,
          recipients: ['bob@example.net'],
          message,
        });
        assert.equal(s.id, 'dur-1');
        assert.equal(s.user, USER);
        assert.equal(s.size, message.length);
        assert.deepEqual(states(s), ['pending']);
        assert.ok(s.expires > s.created);
        await assert.rejects(
          b.add({ id: 'dur-1', user: USER, recipients: ['x@example.net'], message }),
          'an id is taken once',
        );
        await h.close(b);

        const b2 = await h.make(o, true);
        const again = await entry(b2, 'dur-1');
        assert.equal(again.user, USER);
        assert.equal(again.created, s.created);
        assert.deepEqual(
          again.recipients.map((r) => [r.rcpt, r.state]),
          [['bob@example.net', 'pending']],
        );
        const m = await b2.message('dur-1');
        assert.ok(m !== undefined);
        assert.deepEqual(await bytesOf(m), message);
      } finally {
        await h.end();
      }
    });

    test('nmtp: accepted, rejected, and deferred then polled and accepted', async () => {
      const h = harness();
      try {
        const message = frame('three recipients');
        const calls: DeliverRequest[] = [];
        const deliver: DeliverFn = async (r) => {
          calls.push(r);
          if (r.job.kind === 'status') {
            return answers([
              r.rcpt!,
              reply(250, { cookie: r.job.cookie, state: 'accepted', id: 'late' }),
            ]);
          }
          if (r.job.kind !== 'deliver') throw new Error(`unexpected ${r.job.kind}`);
          return answers(
            ...r.job.recipients.map((rcpt): [string, Reply] =>
              rcpt.startsWith('no')
                ? [
                    rcpt,
                    reply(550, { rcpt, err: 'NMTP_ERR_TRANSPORT_RECIPIENT_REJECTED' }, '5.1.1'),
                  ]
                : rcpt.startsWith('wait')
                  ? [rcpt, reply(350, { rcpt, cookie: 'ck-1', min: '1', max: '1' })]
                  : accept(rcpt),
            ),
          );
        };
        const b = await h.make({ dirOrPrefix: storage(), retry: FAST, deliver });
        const rcpts = ['ok@example.net', 'no@example.net', 'wait@example.com'];
        await b.add({ id: 'nmtp-1', user: USER, recipients: rcpts, message });
        const s = await done(b, 'nmtp-1');
        assert.deepEqual(states(s), ['accepted', 'rejected', 'accepted']);
        assert.equal(s.recipients[0]!.id, 'id-ok@example.net');
        assert.equal(s.recipients[1]!.last?.code, 550);
        assert.equal(s.recipients[2]!.id, 'late');

        const deliveries = calls.filter((c) => c.job.kind === 'deliver');
        // One job per destination domain, announcing the message as it is.
        assert.deepEqual(
          deliveries.map(rcptsOf).sort(),
          [['ok@example.net', 'no@example.net'], ['wait@example.com']].sort(),
        );
        const a = announce(message);
        for (const d of deliveries) {
          assert.ok(d.job.kind === 'deliver');
          assert.equal(d.job.size, a.size);
          assert.equal(d.job.digest, a.digest);
        }
        const poll = calls.find((c) => c.job.kind === 'status');
        assert.ok(poll !== undefined && poll.job.kind === 'status');
        assert.equal(poll.job.cookie, 'ck-1');
        assert.equal(poll.rcpt, 'wait@example.com');
        assert.deepEqual(poll.endpoint, endpoint, 'polled where the cookie was issued');
        // The message goes once all are final (and, with an observer, once it has seen so).
        await until(
          async () => (await b.message('nmtp-1')) === undefined,
          'no message once all are final',
        );
      } finally {
        await h.end();
      }
    });

    test('a temporary failure is retried, then given up at the maximum age', async () => {
      const h = harness();
      try {
        let attempts = 0;
        const deliver: DeliverFn = async () => {
          attempts++;
          throw unreachable();
        };
        const retry = { initial: 1, factor: 1, maxInterval: 1, maxAge: 2 };
        const b = await h.make({ dirOrPrefix: storage(), retry, deliver });
        const message = frame('never reaches');
        await b.add({ id: 'temp-1', user: USER, recipients: ['bob@example.net'], message });
        const s = await done(b, 'temp-1');
        const bob = s.recipients[0]!;
        assert.equal(bob.state, 'given-up');
        assert.ok(bob.attempts >= 2, 'retried before giving up');
        assert.equal(bob.attempts, attempts);
        assert.equal(bob.last?.err, 'NMTP_ERR_TRANSPORT_CONNECT_FAILED');
        assert.ok(bob.last!.at <= s.expires, 'no attempt after the maximum age');
      } finally {
        await h.end();
      }
    });

    test('smtp: 2xx accepted, 5xx rejected, 4xx retried; envelope and message as stored', async () => {
      const h = harness();
      try {
        const message = legacy('to the smarthost');
        const seen: { r: SmtpDeliverRequest; bytes: Uint8Array }[] = [];
        const smtpDeliver: SmtpDeliverFn = async (r) => {
          seen.push({ r, bytes: await bytesOf(r.message) });
          return {
            recipients: r.recipients.map((rcpt) =>
              rcpt.startsWith('no')
                ? { rcpt, code: 550, enhanced: '5.1.1', text: 'no such user' }
                : rcpt.startsWith('later') && seen.length === 1
                  ? { rcpt, code: 451, enhanced: '4.3.0', text: 'try again' }
                  : { rcpt, code: 250, text: 'ok' },
            ),
          };
        };
        const b = await h.make({
          dirOrPrefix: storage(),
          retry: FAST,
          deliver: noDeliver,
          smtpDeliver,
        });
        const meta: Json = { envid: 'E-1', ret: 'HDRS' };
        const recipientMeta: Json[] = [{ notify: ['FAILURE'] }, null, { orcpt: 'rfc822;later@x' }];
        const rcpts = ['ok@legacy.example', 'no@legacy.example', 'later@other.example'];
        await b.add({
          id: 'smtp-1',
          kind: 'smtp',
          user: 'sender@example.org',
          recipients: rcpts,
          message,
          meta,
          recipientMeta,
        });
        const s = await done(b, 'smtp-1');
        assert.equal(s.kind, 'smtp');
        assert.deepEqual(states(s), ['accepted', 'rejected', 'accepted']);
        assert.equal(s.recipients[1]!.last?.code, 550);
        assert.equal(s.recipients[2]!.attempts, 2);
        // One transaction for every due recipient, whatever its domain.
        assert.equal(seen.length, 2);
        const first = seen[0]!;
        assert.equal(first.r.id, 'smtp-1');
        assert.equal(first.r.mailFrom, 'sender@example.org');
        assert.deepEqual(first.r.recipients, rcpts);
        assert.deepEqual(first.r.meta, meta);
        assert.deepEqual(first.r.recipientMeta, recipientMeta);
        assert.deepEqual(first.bytes, message, 'the legacy message, octet for octet');
        assert.deepEqual(seen[1]!.r.recipients, ['later@other.example']);
        assert.deepEqual(seen[1]!.r.recipientMeta, [{ orcpt: 'rfc822;later@x' }]);
      } finally {
        await h.end();
      }
    });

    test('smtp: a failed transaction is temporary for every recipient it left unanswered', async () => {
      const h = harness();
      try {
        let calls = 0;
        const smtpDeliver: SmtpDeliverFn = async (r): Promise<SmtpDeliverOutcome> => {
          calls++;
          return calls === 1
            ? { recipients: [], failure: '421 service not available' }
            : { recipients: r.recipients.map((rcpt) => ({ rcpt, code: 250, text: 'ok' })) };
        };
        const b = await h.make({
          dirOrPrefix: storage(),
          retry: FAST,
          deliver: noDeliver,
          smtpDeliver,
        });
        await b.add({
          id: 'smtp-2',
          kind: 'smtp',
          user: '',
          recipients: ['a@legacy.example'],
          message: legacy('x'),
        });
        const s = await done(b, 'smtp-2');
        assert.deepEqual(states(s), ['accepted']);
        assert.equal(s.recipients[0]!.attempts, 2);
        assert.equal(s.user, '', 'the null reverse-path is kept');
      } finally {
        await h.end();
      }
    });

    test('meta and recipient meta come back unchanged, through changes and a restart', async () => {
      const h = harness();
      try {
        const meta: Json = {
          envelope: { from: 'a@b', size: 12, utf8: true, list: [1, 'two', null, { k: 'üñï' }] },
          nothing: null,
        };
        const recipientMeta = [{ notify: 'NEVER' }, undefined, [1, 2, 3]];
        const deliver: DeliverFn = async (r) =>
          answers(...(r.job.kind === 'deliver' ? r.job.recipients : []).map(accept));
        const o = { dirOrPrefix: storage(), retry: FAST, deliver };
        const b = await h.make(o);
        const rcpts = ['a@example.net', 'b@example.net', 'c@example.com'];
        const added = await b.add({
          id: 'meta-1',
          user: USER,
          recipients: rcpts,
          message: frame('m'),
          meta,
          recipientMeta,
        });
        const check = (s: QueuedSubmission): void => {
          assert.deepEqual(s.meta, meta);
          assert.deepEqual(
            s.recipients.map((r) => r.meta),
            recipientMeta,
          );
        };
        check(added);
        const s = await done(b, 'meta-1');
        assert.deepEqual(states(s), ['accepted', 'accepted', 'accepted']);
        check(s);
        check((await b.list()).find((x) => x.id === 'meta-1')!);
        await h.close(b);
        const b2 = await h.make(o, true);
        check(await entry(b2, 'meta-1'));
      } finally {
        await h.end();
      }
    });

    test('list (oldest first), get, counts, ready; unknown ids', async () => {
      const h = harness();
      try {
        const b = await h.make({
          dirOrPrefix: storage(),
          retry: SLOW,
          deliver: () => Promise.reject(unreachable()),
        });
        assert.equal(await b.ready(), true);
        const message = frame('listed');
        await b.add({
          id: 'l-1',
          user: USER,
          recipients: ['a@example.net', 'b@example.net'],
          message,
        });
        await b.add({ id: 'l-2', user: USER, recipients: ['c@example.net'], message });
        await b.add({
          id: 'l-3',
          user: 'carol@example.org',
          recipients: ['d@example.com'],
          message,
        });
        assert.deepEqual(
          (await b.list()).map((s) => s.id),
          ['l-1', 'l-2', 'l-3'],
        );
        assert.equal((await entry(b, 'l-3')).user, 'carol@example.org');
        assert.deepEqual(await b.counts(), {
          pending: 4,
          deferred: 0,
          accepted: 0,
          rejected: 0,
          'given-up': 0,
        });
        assert.equal(await b.get('nope'), undefined);
        assert.equal(await b.message('nope'), undefined);
        assert.equal(await b.retry('nope'), false);
        assert.equal(await b.delete('nope'), false);
        // Every entry got its first attempt, and stays pending for the next (an hour away).
        await until(
          async () => (await b.list()).every((s) => s.recipients.every((r) => r.attempts === 1)),
          'first attempts',
        );
        assert.deepEqual((await b.counts()).pending, 4);
      } finally {
        await h.end();
      }
    });

    test('retry() makes pending and deferred recipients due now', async () => {
      const h = harness();
      try {
        let up = false;
        const deliver: DeliverFn = async (r) => {
          if (r.job.kind === 'status') {
            return answers([
              r.rcpt!,
              reply(250, { cookie: r.job.cookie, state: 'accepted', id: 'polled' }),
            ]);
          }
          if (r.job.kind !== 'deliver') throw new Error(`unexpected ${r.job.kind}`);
          if (r.domain === 'example.net') {
            if (!up) throw unreachable();
            return answers(...r.job.recipients.map(accept));
          }
          return answers(
            ...r.job.recipients.map((rcpt): [string, Reply] => [
              rcpt,
              reply(350, { rcpt, cookie: 'ck', min: '3600', max: '3600' }),
            ]),
          );
        };
        const b = await h.make({ dirOrPrefix: storage(), retry: SLOW, deliver });
        await b.add({
          id: 'r-1',
          user: USER,
          recipients: ['p@example.net', 'd@example.com'],
          message: frame('r'),
        });
        await until(async () => {
          const s = await b.get('r-1');
          return s?.recipients[0]?.attempts === 1 && s.recipients[1]?.state === 'deferred';
        }, 'a temporary failure and a deferral');
        up = true;
        assert.equal(await b.retry('r-1'), true);
        const s = await done(b, 'r-1');
        assert.deepEqual(states(s), ['accepted', 'accepted']);
        assert.equal(s.recipients[1]!.id, 'polled', 'the deferred recipient was polled at once');
      } finally {
        await h.end();
      }
    });

    test('delete() removes the entry and its message, for good', async () => {
      const h = harness();
      try {
        const o = {
          dirOrPrefix: storage(),
          retry: SLOW,
          deliver: () => Promise.reject(unreachable()),
        };
        const b = await h.make(o);
        await b.add({
          id: 'del-1',
          user: USER,
          recipients: ['a@example.net'],
          message: frame('d'),
        });
        await b.add({
          id: 'del-2',
          user: USER,
          recipients: ['b@example.net'],
          message: frame('e'),
        });
        assert.equal(await b.delete('del-1'), true);
        assert.equal(await b.get('del-1'), undefined);
        assert.equal(await b.message('del-1'), undefined);
        assert.deepEqual(
          (await b.list()).map((s) => s.id),
          ['del-2'],
        );
        assert.equal((await b.counts()).pending, 1);
        assert.equal(await b.delete('del-1'), false);
        await h.close(b);
        const b2 = await h.make(o, true);
        assert.equal(await b2.get('del-1'), undefined);
        assert.deepEqual(
          (await b2.list()).map((s) => s.id),
          ['del-2'],
        );
      } finally {
        await h.end();
      }
    });

    test('delete() during a delivery: the job in progress is not cut off, nothing comes back', async () => {
      const h = harness();
      try {
        const gate = h.gate<JobResult>();
        const read: Uint8Array[] = [];
        const deliver: DeliverFn = (r) =>
          gate.pass(r.domain, async () => {
            // The deliverer reads the message after the delete began: it is all still there.
            read.push(await bytesOf(r.message!));
            return answers(...rcptsOf(r).map(accept));
          });
        const o = { dirOrPrefix: storage(), retry: FAST, deliver };
        const b = await h.make(o);
        const message = frame('deleted while it is being delivered');
        await b.add({ id: 'del-3', user: USER, recipients: ['a@example.net'], message });
        await until(() => gate.arrived === 1, 'the delivery started');
        // delete() does not wait for the pass (an observer may delete its own entry).
        assert.equal(await b.delete('del-3'), true);
        assert.equal(await b.get('del-3'), undefined, 'gone for everyone at once');
        gate.open();
        await until(() => read.length === 1, 'the deliverer read the message');
        assert.deepEqual(read[0], message);
        assert.equal(await b.get('del-3'), undefined);
        await h.close(b);
        const b2 = await h.make(o, true);
        assert.equal(await b2.get('del-3'), undefined);
        assert.deepEqual(await b2.list(), []);
        assert.equal(gate.arrived, 1, 'never delivered again');
      } finally {
        await h.end();
      }
    });

    test('the observer sees every change, and what it returns is stored', async () => {
      const h = harness();
      try {
        const seen: string[] = [];
        const observer: QueueObserver = async (s) => {
          const now = states(s).join();
          seen.push(now);
          const m = s.meta as { seen?: string } | undefined;
          if (m?.seen === now) return undefined;
          return {
            ...s,
            meta: { ...(s.meta as object), seen: now },
            recipients: s.recipients.map((r) => ({ ...r, meta: { was: r.state } })),
          };
        };
        let polled = false;
        const deliver: DeliverFn = async (r) => {
          if (r.job.kind === 'status') {
            polled = true;
            return answers([
              r.rcpt!,
              reply(250, { cookie: r.job.cookie, state: 'accepted', id: 'x' }),
            ]);
          }
          return answers(
            ...rcptsOf(r).map((rcpt): [string, Reply] => [
              rcpt,
              reply(350, { rcpt, cookie: 'c', min: '1', max: '1' }),
            ]),
          );
        };
        const o = { dirOrPrefix: storage(), retry: FAST, deliver, observer };
        const b = await h.make(o);
        await b.add({
          id: 'obs-1',
          user: USER,
          recipients: ['bob@example.net'],
          message: frame('o'),
          meta: { mine: 1 },
        });
        await done(b, 'obs-1');
        await until(
          async () => ((await entry(b, 'obs-1')).meta as { seen?: string }).seen === 'accepted',
          'the last change observed',
        );
        assert.ok(polled);
        // Every state the recipient went through, in order (a state may be seen twice).
        const distinct = seen.filter((x, i) => x !== seen[i - 1]);
        assert.deepEqual(distinct, ['pending', 'deferred', 'accepted']);
        const s = await entry(b, 'obs-1');
        assert.deepEqual(s.meta, { mine: 1, seen: 'accepted' });
        assert.deepEqual(s.recipients[0]!.meta, { was: 'accepted' });
        assert.equal(s.recipients[0]!.id, 'x', 'the observer changes meta only');
        await h.close(b);

        // Recovery: every entry is observed once when a backend starts.
        seen.length = 0;
        const b2 = await h.make(o, true);
        await until(() => seen.length >= 1, 'observed at start');
        assert.deepEqual(seen, ['accepted']);
        assert.deepEqual((await entry(b2, 'obs-1')).meta, { mine: 1, seen: 'accepted' });
      } finally {
        await h.end();
      }
    });

    test('annotate() stores meta only, durably, and the observer sees the result', async () => {
      const h = harness();
      try {
        const seen: unknown[] = [];
        const observer: QueueObserver = async (s) => {
          seen.push(s.meta);
          return undefined;
        };
        const deliver: DeliverFn = async (r) =>
          answers(...rcptsOf(r).map((rcpt): [string, Reply] => [rcpt, reply(550)]));
        const o = { dirOrPrefix: storage(), retry: FAST, deliver, observer };
        const b = await h.make(o);
        await b.add({
          id: 'ann-1',
          user: USER,
          recipients: ['bob@example.net'],
          message: frame('a'),
          meta: { hold: true },
          recipientMeta: [{ n: 1 }],
        });
        await done(b, 'ann-1');
        const out = await b.annotate('ann-1', (s) => ({
          ...s,
          // Only meta is taken: a changed state or id would be ignored.
          meta: { hold: false },
          recipients: s.recipients.map((r) => ({ ...r, state: 'accepted', meta: { n: 2 } })),
        }));
        assert.ok(out);
        assert.deepEqual(out.meta, { hold: false });
        assert.deepEqual(states(out), ['rejected']);
        await until(
          () => seen.some((m) => (m as { hold?: boolean } | undefined)?.hold === false),
          'the annotated entry observed',
        );
        assert.equal(await b.annotate('no-such-entry', (s) => s), undefined);
        await h.close(b);
        const b2 = await h.make(o, true);
        const again = await entry(b2, 'ann-1');
        assert.deepEqual(again.meta, { hold: false });
        assert.deepEqual(again.recipients[0]!.meta, { n: 2 });
      } finally {
        await h.end();
      }
    });

    test('the observer can still read the message of an entry it sees finished; then it goes', async () => {
      const h = harness();
      try {
        const opened: { b?: QueueBackend } = {};
        const readable: boolean[] = [];
        const observer: QueueObserver = async (s) => {
          if (s.done !== undefined) readable.push((await opened.b!.message(s.id)) !== undefined);
          return undefined;
        };
        const deliver: DeliverFn = async (r) =>
          answers(...rcptsOf(r).map((rcpt): [string, Reply] => [rcpt, reply(550)]));
        const b = await h.make({ dirOrPrefix: storage(), retry: FAST, deliver, observer });
        opened.b = b;
        await b.add({
          id: 'ret-1',
          user: USER,
          recipients: ['bob@example.net'],
          message: frame('r'),
        });
        await done(b, 'ret-1');
        await until(() => readable.length > 0, 'the final state observed');
        // The first observation of the final state is the one that reports (a DSN with
        // RET=FULL returns the message); a later one may find it gone.
        assert.equal(readable[0], true, 'a DSN with RET=FULL can return the message');
        await until(async () => (await b.message('ret-1')) === undefined, 'the message removed');
      } finally {
        await h.end();
      }
    });

    test('an observer that fails is reported and stops nothing', async () => {
      const h = harness();
      try {
        const errors: unknown[] = [];
        const observer: QueueObserver = async () => {
          throw new Error('observer down');
        };
        const deliver: DeliverFn = async (r) => answers(...rcptsOf(r).map(accept));
        const b = await h.make({
          dirOrPrefix: storage(),
          retry: FAST,
          deliver,
          observer,
          onError: (e) => errors.push(e),
        });
        await b.add({
          id: 'obs-2',
          user: USER,
          recipients: ['bob@example.net'],
          message: frame('o'),
        });
        assert.deepEqual(states(await done(b, 'obs-2')), ['accepted']);
        await until(() => errors.length >= 1, 'the failure reported');
        assert.match(String(errors[0]), /observer down/);
      } finally {
        await h.end();
      }
    });

    test('an observer may add an entry to the same queue (a DSN)', async () => {
      const h = harness();
      try {
        const dsns: SmtpDeliverRequest[] = [];
        const smtpDeliver: SmtpDeliverFn = async (r) => {
          dsns.push(r);
          return { recipients: r.recipients.map((rcpt) => ({ rcpt, code: 250, text: 'ok' })) };
        };
        const deliver: DeliverFn = async (r) =>
          answers(
            ...rcptsOf(r).map((rcpt): [string, Reply] => [rcpt, reply(550, { rcpt }, '5.1.1')]),
          );
        // The observer uses the queue it observes (as the gateway's DSN service does).
        const ref: { b?: QueueBackend } = {};
        const observer: QueueObserver = async (s) => {
          if (s.kind === 'smtp' || (s.meta as { dsn?: boolean } | undefined)?.dsn === true)
            return undefined;
          if (!s.recipients.some((r) => r.state === 'rejected')) return undefined;
          try {
            await ref.b!.add({
              id: `${s.id}-dsn`,
              kind: 'smtp',
              user: '',
              recipients: [s.user],
              message: legacy('bounce'),
              meta: { dsnFor: s.id },
            });
          } catch (e) {
            // Seen twice (idempotent): the DSN is queued already.
            if ((await ref.b!.get(`${s.id}-dsn`)) === undefined) throw e;
          }
          return { ...s, meta: { dsn: true } };
        };
        const b = (ref.b = await h.make({
          dirOrPrefix: storage(),
          retry: FAST,
          deliver,
          smtpDeliver,
          observer,
        }));
        await b.add({
          id: 'bounced',
          user: USER,
          recipients: ['nobody@example.net'],
          message: frame('b'),
        });
        const dsn = await done(b, 'bounced-dsn');
        assert.deepEqual(states(dsn), ['accepted']);
        assert.deepEqual(dsn.meta, { dsnFor: 'bounced' });
        await until(
          async () => (await entry(b, 'bounced')).meta !== undefined,
          'the original marked',
        );
        assert.deepEqual((await entry(b, 'bounced')).meta, { dsn: true });
        assert.deepEqual(states(await entry(b, 'bounced')), ['rejected']);
        assert.equal(dsns.length, 1);
        assert.equal(dsns[0]!.id, 'bounced-dsn');
        assert.equal(dsns[0]!.mailFrom, '');
        assert.deepEqual(dsns[0]!.recipients, [USER]);
      } finally {
        await h.end();
      }
    });

    test('a redelivery after a restart carries the same id and the same message', async () => {
      const h = harness();
      try {
        const ids: string[] = [];
        const digests: string[] = [];
        let up = false;
        const smtpDeliver: SmtpDeliverFn = async (r) => {
          ids.push(r.id);
          // The first answer is lost (the smarthost may have the message already).
          if (!up) throw new Error('connection lost after the final dot');
          return { recipients: r.recipients.map((rcpt) => ({ rcpt, code: 250, text: 'ok' })) };
        };
        const deliver: DeliverFn = async (r) => {
          if (r.job.kind === 'deliver') digests.push(r.job.digest);
          if (!up) throw unreachable();
          return answers(...rcptsOf(r).map(accept));
        };
        const o = { dirOrPrefix: storage(), retry: SLOW, deliver, smtpDeliver };
        const b = await h.make(o);
        await b.add({
          id: 'again-smtp',
          kind: 'smtp',
          user: USER,
          recipients: ['a@legacy.example'],
          message: legacy('again'),
        });
        await b.add({
          id: 'again-nmtp',
          user: USER,
          recipients: ['b@example.net'],
          message: frame('again'),
        });
        await until(() => ids.length === 1 && digests.length === 1, 'the first attempts');
        await h.close(b);
        up = true;
        const b2 = await h.make(o, true);
        // Their next attempt is an hour away: the operator asks for it now.
        assert.equal(await b2.retry('again-smtp'), true);
        assert.equal(await b2.retry('again-nmtp'), true);
        assert.deepEqual(states(await done(b2, 'again-smtp')), ['accepted']);
        assert.deepEqual(states(await done(b2, 'again-nmtp')), ['accepted']);
        assert.deepEqual(ids, ['again-smtp', 'again-smtp']);
        assert.equal(digests.length, 2);
        assert.equal(digests[0], digests[1]);
      } finally {
        await h.end();
      }
    });

    test('a crash during a delivery: the next start delivers the entry again, same id', async () => {
      const h = harness();
      try {
        const first: SmtpDeliverRequest[] = [];
        const dirOrPrefix = storage();
        const b = await h.make({
          dirOrPrefix,
          retry: FAST,
          deliver: noDeliver,
          // The process dies while the smarthost has the message: no answer, ever.
          smtpDeliver: (r) => {
            first.push(r);
            return forever();
          },
        });
        const message = legacy('crash');
        await b.add({
          id: 'crash-1',
          kind: 'smtp',
          user: USER,
          recipients: ['a@legacy.example'],
          message,
        });
        await until(() => first.length === 1, 'the delivery started');
        await h.crash(b);
        const second: { r: SmtpDeliverRequest; bytes: Uint8Array }[] = [];
        const b2 = await h.make(
          {
            dirOrPrefix,
            retry: FAST,
            deliver: noDeliver,
            smtpDeliver: async (r) => {
              second.push({ r, bytes: await bytesOf(r.message) });
              return { recipients: r.recipients.map((rcpt) => ({ rcpt, code: 250, text: 'ok' })) };
            },
          },
          true,
        );
        assert.deepEqual(states(await done(b2, 'crash-1')), ['accepted']);
        assert.equal(second.length, 1);
        assert.equal(second[0]!.r.id, 'crash-1');
        assert.deepEqual(second[0]!.bytes, message);
        assert.equal(first.length, 1);
      } finally {
        await h.end();
      }
    });

    test('close() waits for the work in progress, whose result is stored', async () => {
      const h = harness();
      try {
        const gate = h.gate<JobResult>();
        const deliver: DeliverFn = (r) =>
          gate.pass(r.domain, () => answers(...rcptsOf(r).map(accept)));
        const o = { dirOrPrefix: storage(), retry: FAST, deliver };
        const b = await h.make(o);
        await b.add({
          id: 'close-1',
          user: USER,
          recipients: ['a@example.net'],
          message: frame('c'),
        });
        await until(() => gate.arrived === 1, 'the delivery started');
        let closed = false;
        const closing = h.close(b).then(() => (closed = true));
        await sleep(50);
        assert.equal(closed, false, 'close() waits while a delivery runs');
        gate.open();
        await closing;
        const b2 = await h.make({ ...o, deliver: noDeliver }, true);
        assert.deepEqual(states(await entry(b2, 'close-1')), ['accepted']);
        assert.equal(gate.arrived, 1);
      } finally {
        await h.end();
      }
    });

    test('at most perDestination jobs to one domain at a time; other domains go on', async () => {
      const h = harness();
      try {
        const gate = h.gate<JobResult>();
        const deliver: DeliverFn = (r) =>
          gate.pass(r.domain, () => answers(...rcptsOf(r).map(accept)));
        const b = await h.make({
          dirOrPrefix: storage(),
          retry: FAST,
          deliver,
          concurrency: 8,
          perDestination: 2,
        });
        const message = frame('busy');
        for (let i = 0; i < 5; i++) {
          await b.add({ id: `busy-${i}`, user: USER, recipients: [`u${i}@busy.example`], message });
        }
        await until(() => gate.inFlight('busy.example') === 2, 'two jobs to busy.example');
        await b.add({ id: 'other', user: USER, recipients: ['x@other.example'], message });
        await until(() => gate.inFlight('other.example') === 1, 'other.example is not held up');
        // Let one job go at a time until everything is delivered.
        await until(async () => {
          gate.releaseOne();
          return (await b.counts()).accepted === 6;
        }, 'all delivered');
        assert.equal(gate.maxOf('busy.example'), 2);
      } finally {
        await h.end();
      }
    });

    test('smtp toward MX hosts: a transaction and a limit per recipient domain; toward the smarthost one of each', async () => {
      const h = harness();
      try {
        const gate = h.gate<SmtpDeliverOutcome>();
        const seen: string[][] = [];
        const smtpDeliver: SmtpDeliverFn = (r) => {
          seen.push([...r.recipients]);
          const domains = new Set(r.recipients.map((x) => x.slice(x.indexOf('@') + 1)));
          return gate.pass([...domains].join(','), () => ({
            recipients: r.recipients.map((rcpt) => ({ rcpt, code: 250, text: 'ok' })),
          }));
        };
        const mx = await h.make({
          dirOrPrefix: storage(),
          retry: FAST,
          deliver: noDeliver,
          smtpDeliver,
          smtpRoute: 'mx',
          concurrency: 8,
          perDestination: 2,
        });
        const message = legacy('mx');
        // A slow domain holds its own two slots; the next domain's mail goes on meanwhile.
        for (let i = 0; i < 4; i++) {
          await mx.add({
            id: `mx-busy-${i}`,
            kind: 'smtp',
            user: 'sender@example.org',
            recipients: [`u${i}@busy.example`],
            message,
          });
        }
        await until(() => gate.inFlight('busy.example') === 2, 'two jobs to busy.example');
        await mx.add({
          id: 'mx-two',
          kind: 'smtp',
          user: 'sender@example.org',
          recipients: ['a@other.example', 'b@third.example', 'c@other.example'],
          message,
        });
        await until(() => gate.inFlight('other.example') === 1, 'other.example is not held up');
        await until(async () => {
          gate.releaseOne();
          return (await mx.counts()).accepted === 7;
        }, 'all delivered');
        assert.equal(gate.maxOf('busy.example'), 2);
        // The entry spanning two domains: one transaction per domain, never one for both.
        assert.deepEqual(
          seen.filter((x) => !x[0]!.endsWith('@busy.example')),
          [['a@other.example', 'c@other.example'], ['b@third.example']],
        );
        assert.deepEqual(states(await entry(mx, 'mx-two')), ['accepted', 'accepted', 'accepted']);

        // The smarthost (the default): every domain in one transaction, one limit for all.
        gate.open();
        seen.length = 0;
        const relay = await h.make({
          dirOrPrefix: storage(),
          retry: FAST,
          deliver: noDeliver,
          smtpDeliver,
        });
        await relay.add({
          id: 'relay-two',
          kind: 'smtp',
          user: 'sender@example.org',
          recipients: ['a@other.example', 'b@third.example'],
          message,
        });
        assert.deepEqual(states(await done(relay, 'relay-two')), ['accepted', 'accepted']);
        assert.deepEqual(seen, [['a@other.example', 'b@third.example']]);
      } finally {
        await h.end();
      }
    });

    test('at most `concurrency` entries are worked on at a time', async () => {
      const h = harness();
      try {
        const gate = h.gate<JobResult>();
        const deliver: DeliverFn = (r) =>
          gate.pass('all', () => answers(...rcptsOf(r).map(accept)));
        const b = await h.make({ dirOrPrefix: storage(), retry: FAST, deliver, concurrency: 2 });
        const message = frame('window');
        for (let i = 0; i < 5; i++) {
          await b.add({ id: `w-${i}`, user: USER, recipients: [`u@d${i}.example`], message });
        }
        await until(() => gate.inFlight() === 2, 'two entries at work');
        await until(async () => {
          gate.releaseOne();
          return (await b.counts()).accepted === 5;
        }, 'all delivered');
        assert.equal(gate.maxTotal(), 2);
      } finally {
        await h.end();
      }
    });
  });
}
