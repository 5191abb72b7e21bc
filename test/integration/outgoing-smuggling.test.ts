/**
 * Nothing the gateway emits toward the legacy side can be read as a second message
 * (docs/protocol.md §51.12), with real parts on 127.0.0.1 and ephemeral ports: the
 * published SMTP smuggling variants placed inside NMTP messages
 * (test/adapters/smtp-sender/smuggling-corpus.ts), converted for every peer kind, checked
 * by the outgoing guard, and sent by nodemailer into
 *   - a real smtp-server (strict: only CRLF.CRLF ends DATA), and
 *   - a deliberately lenient SMTP sink that ends DATA at any of the variants (as the
 *     vulnerable servers of CVE-2023-51764/51765/51766 did) and then reads what follows
 *     as commands.
 * Each must see exactly one transaction per message sent, and the octets received must be
 * the octets sent (so dot-stuffing by nodemailer kept every "." line inside the content).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import nodemailer from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import { simpleParser } from 'mailparser';
import { NmtpError } from '../../src/core/errors/index.ts';
import { framedToLegacy } from '../../adapters/legacy/index.ts';
import { checkOutgoing } from '../../adapters/smtp-sender/outgoing-guard.ts';
import { PEERS } from '../adapters/legacy/helpers.ts';
import {
  PLACEMENTS,
  VARIANTS,
  SMUGGLED,
  payloads,
  throughCodec,
} from '../adapters/smtp-sender/smuggling-corpus.ts';

interface Outgoing {
  readonly label: string;
  readonly bytes: Uint8Array;
  readonly eightBit: boolean;
}

/** Every corpus message the converter accepts, each checked by the guard. */
function corpus(): Outgoing[] {
  const out: Outgoing[] = [];
  for (const [vname, variant] of VARIANTS) {
    for (const [where, payload] of payloads(variant)) {
      for (const placement of PLACEMENTS) {
        const framed = throughCodec(placement.build(payload));
        for (const peer of PEERS) {
          let bytes: Uint8Array;
          try {
            bytes = framedToLegacy(framed, peer);
          } catch (err) {
            assert.ok(err instanceof NmtpError && !err.temporary, String(err));
            continue;
          }
          checkOutgoing(bytes);
          const label = `${vname} ${where} in ${placement.name} ${JSON.stringify(peer)}`;
          out.push({ label, bytes, eightBit: bytes.some((x) => x >= 0x80) });
        }
      }
    }
  }
  return out;
}

async function sendAll(port: number, messages: readonly Outgoing[]): Promise<void> {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    ignoreTLS: true,
    pool: true,
    maxConnections: 1,
    maxMessages: Infinity,
  });
  try {
    for (const m of messages) {
      await transport.sendMail({
        envelope: { from: 'gw@gw.example', to: ['bob@legacy.example'], use8BitMime: m.eightBit },
        raw: Buffer.from(m.bytes),
      } as Parameters<typeof transport.sendMail>[0]);
    }
  } finally {
    transport.close();
  }
}

const listen = (s: Server): Promise<number> =>
  new Promise((resolve) => {
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      resolve(typeof a === 'object' && a !== null ? a.port : 0);
    });
  });

test('a real smtp-server receives one transaction per message, octets intact', async (t) => {
  const messages = corpus();
  assert.ok(messages.length > 500, `${messages.length} messages`);
  let mails = 0;
  let rcpts = 0;
  const received: Buffer[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onMailFrom(_a, _s, cb) {
      mails++;
      cb();
    },
    onRcptTo(_a, _s, cb) {
      rcpts++;
      cb();
    },
    onData(stream, _s, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        received.push(Buffer.concat(chunks));
        cb();
      });
    },
  });
  const port = await listen(server.server);
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  await sendAll(port, messages);

  assert.equal(received.length, messages.length);
  assert.equal(mails, messages.length);
  assert.equal(rcpts, messages.length);
  for (let i = 0; i < messages.length; i++) {
    assert.ok(received[i]!.equals(messages[i]!.bytes), messages[i]!.label);
  }
  // The re-parse of what arrived is the message that was sent, never the smuggled one.
  for (const r of received.slice(0, 60)) {
    const parsed = await simpleParser(r);
    assert.equal(parsed.subject, 'quarterly numbers');
    assert.equal(parsed.from?.value[0]?.address, 'mallory@nmtp.example');
  }
});

/**
 * A lenient SMTP sink: a command ends at LF (CR optional); DATA ends at any of
 * <CR|LF|CRLF> [NUL] "." [NUL] <CR|LF|CRLF>, the sequences vulnerable servers accepted.
 * Whatever follows is read as commands, so a smuggled MAIL FROM would be counted.
 */
function lenientSink(): { server: Server; mails: string[]; messages: Buffer[] } {
  const mails: string[] = [];
  const messages: Buffer[] = [];
  // eslint-disable-next-line no-control-regex -- NUL is one of the smuggling variants
  const EOD = /(?:\r\n|\n|\r)\x00?\.\x00?(?:\r\n|\n|\r)/;
  const server = createServer((sock: Socket) => {
    let buf = '';
    let data = false;
    const say = (s: string): void => void sock.write(`${s}\r\n`);
    say('220 lenient.example ESMTP');
    sock.on('data', (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      for (;;) {
        if (data) {
          // The body starts right after "DATA"'s reply: an EOD may be its very first line.
          const m = EOD.exec(`\r\n${buf}`);
          if (m === null) return;
          const end = m.index - 2;
          messages.push(Buffer.from(buf.slice(0, Math.max(0, end)), 'latin1'));
          buf = buf.slice(end + m[0].length);
          data = false;
          say('250 2.0.0 queued');
          continue;
        }
        const nl = buf.search(/\r\n|\n|\r/);
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') say('250-lenient.example\r\n250-8BITMIME\r\n250 SMTPUTF8');
        else if (verb === 'MAIL') {
          mails.push(line);
          say('250 2.1.0 ok');
        } else if (verb === 'DATA') {
          data = true;
          say('354 go ahead');
        } else if (verb === 'QUIT') {
          say('221 bye');
          sock.end();
          return;
        } else say('250 ok');
      }
    });
    sock.on('error', () => {});
  });
  return { server, mails, messages };
}

test('a lenient sink that ends DATA at any smuggling variant still sees one MAIL per message', async (t) => {
  const messages = corpus();
  const sink = lenientSink();
  const port = await listen(sink.server);
  t.after(() => new Promise<void>((resolve) => sink.server.close(() => resolve())));

  await sendAll(port, messages);

  assert.equal(sink.mails.length, messages.length);
  assert.ok(
    sink.mails.every((m) => m.includes('<gw@gw.example>')),
    'no smuggled MAIL FROM',
  );
  assert.equal(sink.messages.length, messages.length);
  for (let i = 0; i < messages.length; i++) {
    // The sink does not undo dot-stuffing: every line that began with "." has one more.
    const unstuffed = sink.messages[i]!.toString('latin1').replace(/(^|\r\n)\./g, '$1');
    const sent = Buffer.from(messages[i]!.bytes).toString('latin1').replace(/\r\n$/, '');
    assert.equal(unstuffed, sent, messages[i]!.label);
  }
});

test('dot lines and an inner CRLF.CRLF arrive intact through nodemailer (it dot-stuffs)', async (t) => {
  const body =
    'Subject: dots\r\nFrom: <a@gw.example>\r\n\r\n.\r\n..\r\n.leading\r\nx\r\n.\r\nMAIL FROM:<evil@x>\r\n.\r\n';
  const sink = lenientSink();
  const port = await listen(sink.server);
  t.after(() => new Promise<void>((resolve) => sink.server.close(() => resolve())));
  await sendAll(port, [{ label: 'dots', bytes: Buffer.from(body), eightBit: false }]);
  assert.equal(sink.mails.length, 1);
  // On the wire every line starting with "." was doubled (RFC 5321 §4.5.2).
  assert.equal(
    sink.messages[0]!.toString('latin1'),
    'Subject: dots\r\nFrom: <a@gw.example>\r\n\r\n..\r\n...\r\n..leading\r\nx\r\n..\r\nMAIL FROM:<evil@x>\r\n..',
  );
});

test('the lenient sink is lenient: raw octets with "\\n.\\n" smuggle a second MAIL into it', async (t) => {
  // The check of the check: without the converter, the guard and nodemailer in the way, the
  // variant does split the message, so the counts above would have seen it.
  const sink = lenientSink();
  const port = await listen(sink.server);
  t.after(() => new Promise<void>((resolve) => sink.server.close(() => resolve())));
  const sock = connect(port, '127.0.0.1');
  const closed = new Promise<void>((resolve) => sock.on('close', () => resolve()));
  sock.resume(); // the replies are not read, but the end of the stream must be
  sock.write(
    'EHLO x\r\nMAIL FROM:<gw@gw.example>\r\nRCPT TO:<bob@legacy.example>\r\nDATA\r\n' +
      `Subject: a\r\n\r\nhello\n.\n${SMUGGLED}QUIT\r\n`,
  );
  await closed;
  assert.deepEqual(sink.mails, ['MAIL FROM:<gw@gw.example>', 'MAIL FROM:<admin@victim.example>']);
  assert.equal(sink.messages.length, 2);
});
