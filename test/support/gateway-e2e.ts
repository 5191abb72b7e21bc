/**
 * What the gateway's end-to-end tests (test/integration/gateway-two, -lifecycle, -bullmq)
 * share: a key made before a gateway starts (so a peer can be told its record first), a
 * logger that keeps every event (so a test can wait on what the gateway decided instead of
 * on time), the messages an NMTP mailbox stored, and the gateway queue's view of one
 * message and of the DSNs written about it.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  domainKeyName,
  keyPairFromSeed,
  printDomainKeyRecord,
  seedToPem,
} from '../../src/core/keys/index.ts';
import { getField, type DecodedMessage } from '../../src/core/frame/index.ts';
import { decodeAndValidate } from '../../src/core/message/index.ts';
import type { SigningKey } from '../../src/core/sign/index.ts';
import { entryMeta } from '../../src/gateway/envelope.ts';
import { createGatewayLog, type GatewayLog } from '../../src/gateway/observe/log.ts';
import type { QueueBackend } from '../../src/queue/port.ts';
import type { QueuedSubmission } from '../../src/queue/types.ts';

export interface GatewayKey {
  readonly keyFile: string;
  readonly key: SigningKey;
  /** `<selector>._nmtpkey.<domain>` and its TXT value: what a peer needs to verify. */
  readonly keyName: string;
  readonly keyRecord: string;
}

/** A domain key written as the PEM file `gateway.keyFile` names, with its TXT record. */
export function makeGatewayKey(dir: string, domain: string, selector: string): GatewayKey {
  const seed = randomBytes(32);
  const keyFile = join(dir, `${domain}.key`);
  writeFileSync(keyFile, seedToPem(seed), { mode: 0o600 });
  const key = keyPairFromSeed(seed);
  return {
    keyFile,
    key,
    keyName: domainKeyName(selector, domain),
    keyRecord: printDomainKeyRecord({ publicKey: key.publicKey, flags: '' }),
  };
}

export interface LogEvent {
  readonly event: string;
  readonly [field: string]: unknown;
}

/** A strict JSON logger at debug level whose lines are kept, parsed, in `events`. */
export function recordingLog(): { log: GatewayLog; events: LogEvent[] } {
  const events: LogEvent[] = [];
  const log = createGatewayLog({
    level: 'debug',
    format: 'json',
    strict: true,
    destination: { write: (line: string) => void events.push(JSON.parse(line) as LogEvent) },
  });
  return { log, events };
}

/** The last events of a recording, one line each: a failure message's context. */
export function tail(events: readonly LogEvent[], n = 30): string {
  return events
    .slice(-n)
    .map((e) => JSON.stringify(e))
    .join('\n');
}

/**
 * Polls `probe` until it gives a value; `what` (and `context`, e.g. the log) explain a
 * timeout. The bound only turns a bug into a failure instead of a hang.
 */
export async function until<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  what: string,
  ms = 30_000,
  context: () => string = () => '',
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end)
      throw new Error(`timed out after ${ms} ms waiting for ${what}\n${context()}`);
    await sleep(100);
  }
}

export interface StoredMessage {
  readonly file: string;
  readonly bytes: Uint8Array;
  readonly message: DecodedMessage;
}

/** The messages in an NMTP mailbox's new/ whose Message-Id is `messageId` ("<…>"). */
export function storedWithId(maildir: string, messageId: string): StoredMessage[] {
  let names: string[];
  try {
    names = readdirSync(join(maildir, 'new')).filter((n) => n.endsWith('.nmtp'));
  } catch {
    return [];
  }
  const out: StoredMessage[] = [];
  for (const n of names) {
    const file = join(maildir, 'new', n);
    const bytes = new Uint8Array(readFileSync(file));
    const message = decodeAndValidate(bytes);
    if (getField(message.root.fields, 'Message-Id') === messageId) {
      out.push({ file, bytes, message });
    }
  }
  return out;
}

/** The cookies of the messages an NMTP mailbox holds (held/<cookie>.nmtp). */
export function heldCookies(maildir: string): string[] {
  try {
    return readdirSync(join(maildir, 'held'))
      .filter((n) => n.endsWith('.nmtp'))
      .map((n) => n.slice(0, -'.nmtp'.length));
  } catch {
    return [];
  }
}

/** The entries smtp-in queued for the reverse-path `from` (its 'nmtp' and 'smtp' ones). */
export async function entriesFrom(q: QueueBackend, from: string): Promise<QueuedSubmission[]> {
  return (await q.list()).filter((s) => {
    const m = entryMeta(s.meta);
    return m?.origin === 'smtp-in' && m.mailFrom === from;
  });
}

/**
 * The state `rcpt` reaches in the entry smtp-in queued for `from`, once it has left
 * `pending`. A receiver stores a message (or a sink sees it) before its answer has travelled
 * back and been recorded in the sender's queue, so a test that has just seen the message
 * arrive must wait for that record instead of reading the queue at once.
 */
export async function settledState(
  q: QueueBackend,
  from: string,
  rcpt: string,
  context: () => string = () => '',
  ms = 30_000,
): Promise<string> {
  return until(
    async () => {
      const entry = (await entriesFrom(q, from)).find((e) =>
        e.recipients.some((x) => x.rcpt === rcpt),
      );
      const state = entry?.recipients.find((x) => x.rcpt === rcpt)?.state;
      return state === undefined || state === 'pending' ? undefined : state;
    },
    `the queue's record of the answer for ${rcpt}`,
    ms,
    context,
  );
}

/** The DSN entries the gateway queued about entry `id` (their ids are `<id>-d<hash>`). */
export async function dsnEntriesAbout(q: QueueBackend, id: string): Promise<QueuedSubmission[]> {
  return (await q.list()).filter(
    (s) => s.id.startsWith(`${id.slice(0, 50)}-d`) && entryMeta(s.meta)?.origin === 'dsn',
  );
}

/**
 * True once every recipient of the entry is final and the DSN service has dealt with it:
 * reported (a DSN queued, or decided that none is due) or answered in the LMTP session.
 */
export function settledAndReported(s: QueuedSubmission): boolean {
  return s.recipients.every((r) => {
    const m = r.meta as { reported?: boolean; answered?: boolean } | undefined;
    return (
      ['accepted', 'rejected', 'given-up'].includes(r.state) &&
      (m?.reported === true || m?.answered === true)
    );
  });
}
