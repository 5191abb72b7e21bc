/**
 * `nmtp-gateway sink`: a throwaway SMTP receiver for demos and first runs (as Postfix's
 * smtp-sink): it takes every message, writes it to `<dir>/<n>.eml` with a Return-Path and
 * the envelope recipients on top, and reports one line per message. It offers SMTPUTF8 and
 * 8BITMIME but not DSN — it sends no reports, so it does not promise any (a gateway then
 * takes its 250 as final at once, docs/protocol.md §52.12.3). Not for production mail: no
 * TLS, no limits beyond the size, no durability beyond writing the file before the 250.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';

export interface SinkOptions {
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  /** Called after each message is written. */
  readonly onMessage?: (m: { file: string; from: string; to: string[]; size: number }) => void;
}

export interface RunningSink {
  readonly port: number;
  close(): Promise<void>;
}

export async function startSink(o: SinkOptions): Promise<RunningSink> {
  mkdirSync(o.dir, { recursive: true });
  let n = 0;
  const server = new SMTPServer({
    secure: false,
    disabledCommands: ['AUTH', 'STARTTLS'],
    authOptional: true,
    disableReverseLookup: true,
    logger: false,
    banner: 'nmtp-gateway sink',
    hideDSN: true,
    size: 50 * 1024 * 1024,
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const env = session.envelope;
        const from = env.mailFrom === false ? '' : env.mailFrom.address;
        const to = env.rcptTo.map((r) => r.address);
        const head = `Return-Path: <${from}>\r\n${to.map((t) => `X-Envelope-To: <${t}>\r\n`).join('')}`;
        const file = join(o.dir, `${Date.now()}.${process.pid}.${++n}.eml`);
        try {
          writeFileSync(`${file}.tmp`, Buffer.concat([Buffer.from(head, 'utf8'), ...chunks]));
          renameSync(`${file}.tmp`, file);
        } catch (e) {
          cb(Object.assign(new Error('cannot store the message'), { responseCode: 451 }));
          return void e;
        }
        o.onMessage?.({ file, from, to, size: chunks.reduce((a, c) => a + c.length, 0) });
        cb(null, 'Ok: stored by the sink');
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(o.port, o.host, resolve);
  });
  const address = server.server.address();
  const port = address !== null && typeof address === 'object' ? address.port : o.port;
  return { port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
