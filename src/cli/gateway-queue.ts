/**
 * `nmtp-gateway queue …`: the queue seen and managed as postqueue and postsuper do.
 *
 *   queue list            every entry: id, size, arrival, sender, then each recipient with
 *                         its state and last answer (postqueue -p)
 *   queue show ID         one entry in full, as JSON
 *   queue retry ID…|ALL   every pending or deferred recipient due now (postqueue -i / -f)
 *   queue delete ID…|ALL  removed with its message, nothing further sent (postsuper -d)
 *
 * With the embedded backend only one process may own the queue directory: while the
 * gateway runs, these commands go through its admin listener (loopback); when it does not
 * answer, they open the directory themselves. With BullMQ they use Redis directly.
 */
import { request } from 'node:http';
import { NmtpError } from '../core/errors/index.ts';
import type { GatewayConfig } from '../gateway/config.ts';
import { entryMeta, recipientMeta } from '../gateway/envelope.ts';
import type { QueueBackend } from '../queue/port.ts';
import type { LastResult, QueuedSubmission } from '../queue/types.ts';
import { openQueue } from './gateway-start.ts';

export const QUEUE_USAGE =
  'nmtp-gateway queue list | show ID | retry ID…|ALL | delete ID…|ALL [--config FILE]';

type Out = (s: string) => void;

/** The operations the commands need, from the running gateway or from the backend itself. */
interface QueueAccess {
  list(): Promise<QueuedSubmission[]>;
  get(id: string): Promise<QueuedSubmission | undefined>;
  retry(id: string): Promise<boolean>;
  delete(id: string): Promise<boolean>;
  close(): Promise<void>;
}

function call(
  listen: string,
  method: string,
  path: string,
): Promise<{ status: number; body: string } | undefined> {
  const i = listen.lastIndexOf(':');
  const host = listen.slice(0, i).replace(/^\[|\]$/g, '');
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: host === '0.0.0.0' ? '127.0.0.1' : host,
        port: Number(listen.slice(i + 1)),
        method,
        path,
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('admin listener timed out')));
    req.on('error', (e: NodeJS.ErrnoException) =>
      // Nobody listening: the gateway is not running; the caller opens the queue itself.
      e.code === 'ECONNREFUSED' ? resolve(undefined) : reject(e),
    );
    req.end();
  });
}

async function viaAdmin(listen: string): Promise<QueueAccess | undefined> {
  const probe = await call(listen, 'GET', '/queue');
  if (probe === undefined) return undefined;
  const json = async <T>(method: string, path: string): Promise<T | undefined> => {
    const r = await call(listen, method, path);
    if (r === undefined)
      throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'the gateway stopped answering');
    if (r.status === 404) return undefined;
    if (r.status !== 200)
      throw new NmtpError(
        'NMTP_ERR_TRANSPORT_LOCAL',
        `admin ${method} ${path}: ${r.status} ${r.body}`,
      );
    return JSON.parse(r.body) as T;
  };
  const id = (x: string): string => encodeURIComponent(x);
  return {
    list: async () => (await json<QueuedSubmission[]>('GET', '/queue')) ?? [],
    get: (x) => json<QueuedSubmission>('GET', `/queue/${id(x)}`),
    retry: async (x) => (await json<unknown>('POST', `/queue/${id(x)}/retry`)) !== undefined,
    delete: async (x) => (await json<unknown>('DELETE', `/queue/${id(x)}`)) !== undefined,
    close: async () => undefined,
  };
}

async function direct(c: GatewayConfig): Promise<QueueBackend> {
  const refuse = async (): Promise<never> => {
    throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'the queue command does not deliver');
  };
  return openQueue(c, { deliver: refuse, smtpDeliver: refuse }, process.env, false);
}

function when(unix: number): string {
  return new Date(unix * 1000).toISOString().replace('.000Z', 'Z');
}

/**
 * A recipient's last answer as postqueue shows it. An SMTP answer is kept with the queue's
 * reading of its code (any 4xx as 450) and the server's own reply as its text ("451 try
 * again"): the server's words are shown, "host mx.example[192.0.2.1]:25 said: 451 4.3.0 try
 * again".
 */
function lastAnswer(l: LastResult): string {
  const said = l.relay === undefined ? [] : [`host ${l.relay} said:`];
  const own = l.relay !== undefined ? /^(\d{3}) (.*)$/s.exec(l.text ?? '') : null;
  const words =
    own !== null ? [own[1], l.enhanced, l.err, own[2]] : [l.code, l.enhanced, l.err, l.text];
  return [...said, ...words].filter((x) => x !== undefined).join(' ');
}

/** postqueue -p style: one block per entry. */
export function formatList(entries: readonly QueuedSubmission[]): string {
  if (entries.length === 0) return 'Mail queue is empty';
  const lines: string[] = [];
  let pending = 0;
  for (const s of entries) {
    const m = entryMeta(s.meta);
    const from = m === undefined ? s.user : m.mailFrom === '' ? 'MAILER-DAEMON' : m.mailFrom;
    lines.push(`${s.id}  ${s.kind ?? 'nmtp'}  ${s.size}  ${when(s.created)}  ${from}`);
    for (const r of s.recipients) {
      const legacy = recipientMeta(r.meta)?.legacy;
      const who = legacy !== undefined && legacy !== r.rcpt ? `${r.rcpt} (${legacy})` : r.rcpt;
      // Who said it, as postqueue's "(host mx.example[192.0.2.1] said: …)".
      const last = r.last === undefined ? '' : ` — ${lastAnswer(r.last)}`;
      const next = r.state === 'pending' || r.state === 'deferred' ? ` next ${when(r.nextAt)}` : '';
      const cookie = r.cookie === undefined ? '' : ` cookie=${r.cookie}`;
      if (r.state === 'pending' || r.state === 'deferred') pending++;
      lines.push(`    ${r.state.padEnd(9)} ${who}${next}${cookie}${last}`);
    }
    lines.push('');
  }
  lines.push(`-- ${entries.length} entries, ${pending} recipients waiting`);
  return lines.join('\n');
}

export async function queueCommand(c: GatewayConfig, args: string[], out: Out): Promise<number> {
  const [op, ...ids] = args;
  if (op === undefined || !['list', 'show', 'retry', 'delete'].includes(op)) {
    throw Object.assign(new Error(`queue takes list, show, retry or delete`), {
      code: 'ERR_PARSE_ARGS_QUEUE',
    });
  }
  if (op !== 'list' && ids.length === 0) {
    throw Object.assign(new Error(`queue ${op} takes an id (or ALL)`), {
      code: 'ERR_PARSE_ARGS_QUEUE',
    });
  }
  const q: QueueAccess =
    (c.queue.backend === 'embedded' && c.admin.listen !== ''
      ? await viaAdmin(c.admin.listen)
      : undefined) ?? (await direct(c));
  try {
    if (op === 'list') {
      out(formatList(await q.list()));
      return 0;
    }
    if (op === 'show') {
      let missing = 0;
      for (const id of ids) {
        const s = await q.get(id);
        if (s === undefined) {
          process.stderr.write(`nmtp-gateway queue show: ${id}: no such entry\n`);
          missing++;
        } else out(JSON.stringify(s, null, 2));
      }
      return missing === 0 ? 0 : 65;
    }
    // ALL: retry takes the entries with a recipient still waiting (a finished entry, kept
    // for STATUS and `queue show`, has nothing to deliver); delete takes every entry.
    const all =
      ids.length === 1 && ids[0] === 'ALL'
        ? (await q.list()).filter((s) => op === 'delete' || s.done === undefined).map((s) => s.id)
        : ids;
    let missing = 0;
    for (const id of all) {
      const ok = op === 'retry' ? await q.retry(id) : await q.delete(id);
      if (!ok) {
        process.stderr.write(`nmtp-gateway queue ${op}: ${id}: no such entry\n`);
        missing++;
      }
    }
    const verb = op === 'retry' ? 'scheduled for delivery now' : 'deleted';
    out(`${all.length - missing} entr${all.length - missing === 1 ? 'y' : 'ies'} ${verb}`);
    return missing === 0 ? 0 : 65;
  } finally {
    await q.close();
  }
}
