/**
 * The deliverer's connection pool (adapters/smtp-sender/pool.ts, nodemailer's SMTPConnection
 * without its Mail/MimeNode pipeline), through the deliverer against a scripted SMTP server
 * on 127.0.0.1 (scripted-server.ts) that counts connections: reuse across messages, the
 * maxConnections and maxMessages limits, no reuse after an error or a 421, RSET after a
 * refusal, a message sent again when its reused connection was dead before it was sent,
 * AUTH once per connection, the idle timeout, a large message streamed intact, and close()
 * leaving nothing behind (the process exits).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { smtpDeliverer, type SmtpDeliverer } from '../../../adapters/smtp-sender/smtp-deliver.ts';
import type { SmtpDeliverRequest } from '../../../src/queue/port.ts';
import { eventually } from '../../support/eventually.ts';
import { rawSource, startScripted } from './scripted-server.ts';
import { SMUGGLED, VARIANTS, payloads } from './smuggling-corpus.ts';

const MESSAGE = Buffer.from(
  'From: Alice <alice@legacy.example>\r\nSubject: pool\r\n\r\n.a dot first\r\nbody\r\n',
);

let ids = 0;
function request(rcpt: string, message: Uint8Array = MESSAGE): SmtpDeliverRequest {
  return {
    id: `QQpool${ids++}-s`,
    mailFrom: 'alice@legacy.example',
    recipients: [rcpt],
    meta: { origin: 'smtp-in', mailFrom: 'alice@legacy.example', arrival: 0 },
    recipientMeta: [{ legacy: rcpt }],
    message: rawSource(message),
  };
}

function deliverer(
  port: number,
  pool?: { maxConnections?: number; maxMessages?: number; idleTimeout?: number },
  auth?: { user: string; pass: string },
): SmtpDeliverer {
  return smtpDeliverer({
    host: '127.0.0.1',
    port,
    tls: 'none',
    name: 'gw.example.net',
    ...(pool === undefined ? {} : { pool }),
    ...(auth === undefined ? {} : { auth }),
  });
}

async function codeOf(send: SmtpDeliverer, rcpt: string): Promise<number | string | undefined> {
  const out = await send(request(rcpt));
  return out.recipients[0]?.code ?? out.failure;
}

test('one connection carries message after message; concurrent ones use at most maxConnections', async () => {
  const server = await startScripted();
  const send = deliverer(server.port, { maxConnections: 3 });
  try {
    for (let i = 0; i < 5; i++) assert.equal(await codeOf(send, `u${i}@legacy.example`), 250);
    assert.equal(server.connections.length, 1);
    assert.equal(server.connections[0]!.messages.length, 5);
    // Nothing between accepted messages: the next MAIL FROM starts the next transaction.
    assert.ok(!server.connections[0]!.commands.includes('RSET'));
    assert.deepEqual(server.connections[0]!.messages[0], MESSAGE);

    const codes = await Promise.all(
      Array.from({ length: 20 }, (_, i) => codeOf(send, `c${i}@legacy.example`)),
    );
    assert.deepEqual(codes, Array(20).fill(250));
    assert.equal(server.maxOpen(), 3);
    assert.equal(server.connections.length, 3);
    const total = server.connections.reduce((n, c) => n + c.messages.length, 0);
    assert.equal(total, 25);
  } finally {
    await send.close();
    await server.close();
  }
});

test('after maxMessages a connection is QUIT and a fresh one carries the next message', async () => {
  const server = await startScripted();
  const send = deliverer(server.port, { maxMessages: 2 });
  try {
    for (let i = 0; i < 5; i++) assert.equal(await codeOf(send, `u${i}@legacy.example`), 250);
    assert.deepEqual(
      server.connections.map((c) => c.messages.length),
      [2, 2, 1],
    );
    await server.connections[0]!.closed;
    await server.connections[1]!.closed;
    assert.equal(server.connections[0]!.commands.at(-1), 'QUIT');
    assert.equal(server.connections[1]!.commands.at(-1), 'QUIT');
    assert.equal(server.connections[2]!.isClosed(), false);
  } finally {
    await send.close();
    await server.close();
  }
});

test('a 421 after the message answers it 421 and the connection is not reused', async () => {
  const server = await startScripted({
    reply: ({ conn, verb, transaction }) =>
      conn.index === 1 && transaction === 2 && verb === '.' ? '421 4.3.2 Shutting down' : undefined,
  });
  const send = deliverer(server.port);
  try {
    assert.equal(await codeOf(send, 'a@legacy.example'), 250);
    const out = await send(request('b@legacy.example'));
    assert.deepEqual(out.recipients, [
      {
        rcpt: 'b@legacy.example',
        code: 421,
        enhanced: '4.3.2',
        text: 'Shutting down',
        relay: `127.0.0.1:${server.port}`,
      },
    ]);
    assert.equal(await codeOf(send, 'c@legacy.example'), 250);
    assert.equal(server.connections.length, 2);
    assert.equal(server.connections[0]!.messages.length, 2);
    assert.equal(server.connections[1]!.messages.length, 1);
  } finally {
    await send.close();
    await server.close();
  }
});

test('a connection lost in the middle of a message is a failure; the next message gets a new one', async () => {
  const server = await startScripted({
    reply: ({ conn, verb, transaction }) =>
      conn.index === 1 && transaction === 1 && verb === '.' ? 'drop' : undefined,
  });
  const send = deliverer(server.port);
  try {
    const out = await send(request('a@legacy.example'));
    assert.deepEqual(out.recipients, []);
    assert.match(out.failure ?? '', /ECONNECTION|ESOCKET/);
    assert.equal(await codeOf(send, 'b@legacy.example'), 250);
    assert.equal(server.connections.length, 2);
  } finally {
    await send.close();
    await server.close();
  }
});

test('a refused sender or message: RSET, and the same connection carries the next message', async () => {
  const server = await startScripted({
    reply: ({ verb, transaction }) =>
      transaction === 1 && verb === 'MAIL'
        ? '550 5.7.1 Sender refused'
        : transaction === 2 && verb === '.'
          ? '554 5.6.0 Message refused'
          : undefined,
  });
  const send = deliverer(server.port);
  try {
    assert.deepEqual((await send(request('a@legacy.example'))).recipients, [
      {
        rcpt: 'a@legacy.example',
        code: 550,
        enhanced: '5.7.1',
        text: 'Sender refused',
        relay: `127.0.0.1:${server.port}`,
      },
    ]);
    assert.deepEqual((await send(request('b@legacy.example'))).recipients, [
      {
        rcpt: 'b@legacy.example',
        code: 554,
        enhanced: '5.6.0',
        text: 'Message refused',
        relay: `127.0.0.1:${server.port}`,
      },
    ]);
    assert.equal(await codeOf(send, 'c@legacy.example'), 250);
    assert.equal(server.connections.length, 1);
    const commands = server.connections[0]!.commands;
    assert.equal(commands.filter((c) => c === 'RSET').length, 2);
    // Each RSET comes before the next MAIL FROM.
    assert.deepEqual(
      commands.filter((c) => c === 'RSET' || c.startsWith('MAIL')).map((c) => c.slice(0, 4)),
      ['MAIL', 'RSET', 'MAIL', 'RSET', 'MAIL'],
    );
  } finally {
    await send.close();
    await server.close();
  }
});

test('a reused connection found dead before its message was sent: the message goes over a new one', async () => {
  // The first connection dies at its second MAIL FROM without a reply (a server that closed
  // an idle session as the client spoke), the second answers 421 to its second MAIL FROM
  // (a server going down): neither message was sent, both are delivered over fresh ones.
  const server = await startScripted({
    reply: ({ conn, verb, transaction }) =>
      transaction === 2 && verb === 'MAIL'
        ? conn.index === 1
          ? 'drop'
          : conn.index === 2
            ? '421 4.3.2 Service shutting down'
            : undefined
        : undefined,
  });
  const send = deliverer(server.port);
  try {
    assert.equal(await codeOf(send, 'a@legacy.example'), 250);
    assert.equal(await codeOf(send, 'b@legacy.example'), 250);
    assert.equal(await codeOf(send, 'c@legacy.example'), 250);
    assert.deepEqual(
      server.connections.map((c) => c.messages.length),
      [1, 1, 1],
    );
  } finally {
    await send.close();
    await server.close();
  }
});

test('a 421 on a fresh connection is an answer, not retried', async () => {
  const server = await startScripted({
    reply: ({ verb }) => (verb === 'MAIL' ? '421 4.7.0 Try again later' : undefined),
  });
  const send = deliverer(server.port);
  try {
    const out = await send(request('a@legacy.example'));
    assert.deepEqual(out.recipients, [
      {
        rcpt: 'a@legacy.example',
        code: 421,
        enhanced: '4.7.0',
        text: 'Try again later',
        relay: `127.0.0.1:${server.port}`,
      },
    ]);
    assert.equal(server.connections.length, 1);
  } finally {
    await send.close();
    await server.close();
  }
});

test('AUTH once per connection when the server offers it; refused AUTH is a failure', async () => {
  const server = await startScripted({ auth: { user: 'gw', pass: 's3cret' } });
  const good = deliverer(server.port, undefined, { user: 'gw', pass: 's3cret' });
  const bad = deliverer(server.port, undefined, { user: 'gw', pass: 'wrong' });
  try {
    for (let i = 0; i < 3; i++) assert.equal(await codeOf(good, `u${i}@legacy.example`), 250);
    assert.equal(server.connections[0]!.commands.filter((c) => c.startsWith('AUTH')).length, 1);
    const out = await bad(request('x@legacy.example'));
    assert.deepEqual(out.recipients, []);
    assert.match(out.failure ?? '', /EAUTH/);
  } finally {
    await good.close();
    await bad.close();
    await server.close();
  }
});

test('an idle connection is QUIT after idleTimeout; the next message opens a new one', async () => {
  const server = await startScripted();
  const send = deliverer(server.port, { idleTimeout: 20 });
  try {
    assert.equal(await codeOf(send, 'a@legacy.example'), 250);
    await server.connections[0]!.closed;
    assert.equal(server.connections[0]!.commands.at(-1), 'QUIT');
    assert.equal(await codeOf(send, 'b@legacy.example'), 250);
    assert.equal(server.connections.length, 2);
  } finally {
    await send.close();
    await server.close();
  }
});

test('a message over 1 MiB is streamed, dot-stuffed, and arrives intact', async () => {
  const server = await startScripted({ extensions: ['PIPELINING', 'SIZE 10240000'] });
  const send = deliverer(server.port);
  const line = '.' + 'x'.repeat(76) + '\r\n';
  const big = Buffer.from('Subject: big\r\n\r\n' + line.repeat(Math.ceil((3 << 20) / line.length)));
  try {
    assert.equal((await send(request('a@legacy.example', big))).recipients[0]?.code, 250);
    assert.equal(server.connections[0]!.messages.length, 1);
    assert.ok(server.connections[0]!.messages[0]!.equals(big));
    assert.ok(server.connections[0]!.commands.some((c) => c.includes(`SIZE=${big.length}`)));
  } finally {
    await send.close();
    await server.close();
  }
});

test('the SMTP smuggling corpus through the pool: one transaction per message, the payload kept inside it', async () => {
  // The bytes go to SMTPConnection.send whole now: its DataStream must still turn bare CR
  // and LF into CRLF and stuff every leading dot (docs/protocol.md §51.12).
  const server = await startScripted();
  const send = deliverer(server.port);
  const canonical = (b: Uint8Array): Buffer =>
    Buffer.from(
      Buffer.from(b)
        .toString('latin1')
        .replace(/\r(?!\n)|(?<!\r)\n/g, '\r\n'),
      'latin1',
    );
  try {
    const sent: Buffer[] = [];
    for (const [, variant] of VARIANTS) {
      for (const [, payload] of payloads(variant)) {
        const body = Buffer.concat([Buffer.from('Subject: corpus\r\n\r\n'), payload]);
        assert.equal((await send(request('bob@legacy.example', body))).recipients[0]?.code, 250);
        sent.push(body);
      }
    }
    const received = server.connections.flatMap((c) => c.messages);
    assert.equal(received.length, sent.length);
    const expected = sent.map((b) => {
      const c = canonical(b);
      // A message not ending in CRLF gets one before the final dot (RFC 5321 §4.1.1.4).
      return c.subarray(-2).toString() === '\r\n' ? c : Buffer.concat([c, Buffer.from('\r\n')]);
    });
    received.forEach((m, i) => assert.ok(m.equals(expected[i]!), `message ${i}`));
    const commands = server.connections.flatMap((c) => c.commands);
    assert.ok(!commands.some((c) => c.includes('victim.example')), SMUGGLED);
  } finally {
    await send.close();
    await server.close();
  }
});

test('close() closes idle connections, and the process exits with nothing left open', async () => {
  const server = await startScripted();
  const send = deliverer(server.port, { maxConnections: 2 });
  try {
    await Promise.all([codeOf(send, 'a@legacy.example'), codeOf(send, 'b@legacy.example')]);
    assert.equal(server.open(), 2);
    await send.close();
    await Promise.all(server.connections.map((c) => c.closed));
    assert.equal(server.open(), 0);
    assert.match((await send(request('c@legacy.example'))).failure ?? '', /pool was closed/);

    // A process that delivered and closed ends on its own.
    const fixture = fileURLToPath(new URL('./close-exits.fixture.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, String(server.port), '4'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    try {
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      assert.equal(code, 0);
      assert.equal(stdout.trim(), '250 250 250 250');
    } finally {
      child.kill();
    }
    await eventually(() => server.open() === 0, 'the child closed its connections');
  } finally {
    await send.close();
    await server.close();
  }
});
