/**
 * `queue.perDestination` is how many deliveries to one NMTP domain run at once, and a
 * session carries one transfer at a time, so it is also how many sessions the gateway opens
 * to the domain's receiver. (The transfer client's pool kept its own default of 4: twenty
 * deliveries queued behind four sessions, and the receiver's side of the forward bench lagged
 * behind the gateway's intake.)
 *
 * Real parts: the gateway (`startGateway`), swaks for the messages, the reference mailbox
 * (`serveMailbox`) over TLS as the receiver. Between them, a TCP relay that counts the
 * connections and holds each until six are open at once (or 20 s have passed, so a gateway
 * that opens fewer fails the count instead of hanging the test), then joins them to the
 * receiver.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type RunningGateway } from '../../src/cli/gateway-start.ts';
import { staticTxtResolver } from '../../src/dns/txt.ts';
import { validateConfig } from '../../src/gateway/config.ts';
import { generateSelfSigned } from '../../src/server/certs.ts';
import { serveMailbox, type Serving } from '../../src/server/serve.ts';
import { swaks } from '../harness/swaks.ts';
import { makeGatewayKey, recordingLog, until } from '../support/gateway-e2e.ts';

const SESSIONS = 6;

let dir: string;
let receiver: Serving;
let gw: RunningGateway;
let relay: Server;
let relayPort = 0;
/** Connections open through the relay now, and the most at once. */
let open = 0;
let most = 0;
const held: Socket[] = [];
let released = false;
let releaseTimer: NodeJS.Timeout | undefined;
const joined = new Set<Socket>();

function join1(client: Socket): void {
  const server = connect(receiver.port, '127.0.0.1');
  joined.add(client).add(server);
  client.pipe(server).pipe(client);
  const drop = (): void => {
    client.destroy();
    server.destroy();
  };
  client.on('error', drop).on('close', drop);
  server.on('error', drop).on('close', drop);
}

function release(): void {
  if (released) return;
  released = true;
  clearTimeout(releaseTimer);
  for (const s of held.splice(0)) join1(s);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gw-sessions-'));
  const maildir = join(dir, 'maildir');
  mkdirSync(maildir);
  const key = makeGatewayKey(dir, 'gateway.nmtp.test', 'gw1');
  const cert = generateSelfSigned(join(dir, 'tls'), '127.0.0.1');
  receiver = await serveMailbox({
    host: '127.0.0.1',
    port: 0,
    ...cert,
    serverName: '127.0.0.1',
    maildir,
    resolveTxt: staticTxtResolver(new Map([[key.keyName, [key.keyRecord]]])),
  });
  relay = createServer((s) => {
    open++;
    most = Math.max(most, open);
    s.on('close', () => open--);
    if (released) return join1(s);
    held.push(s);
    if (held.length >= SESSIONS) release();
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  relayPort = (relay.address() as { port: number }).port;
  gw = await startGateway(
    validateConfig({
      gateway: { keyFile: key.keyFile, stateDir: join(dir, 'gw') },
      smtp: { listeners: [{ protocol: 'smtp', listen: '127.0.0.1:0' }] },
      nmtp: { receiver: { enabled: false }, peerCa: cert.certFile },
      routing: {
        staticRecords: { srv: [{ domain: 'far.nmtp.test', target: '127.0.0.1', port: relayPort }] },
      },
      queue: { dir: join(dir, 'queue'), perDestination: SESSIONS },
      admin: { listen: '' },
    }),
    { log: recordingLog().log },
  );
});

after(async () => {
  release();
  await gw?.close();
  for (const s of joined) s.destroy();
  await new Promise<void>((r) => relay.close(() => r()));
  await receiver?.close();
  rmSync(dir, { recursive: true, force: true });
});

test(`${SESSIONS} messages for one NMTP domain travel in ${SESSIONS} sessions at once (queue.perDestination)`, async () => {
  // Until the sixth connection, every session the gateway opens waits at the relay.
  releaseTimer = setTimeout(release, 20_000);
  const sent = await Promise.all(
    Array.from({ length: SESSIONS }, (_, i) =>
      swaks({
        server: { port: gw.ports['smtp:0']! },
        from: 'alice@legacy.example',
        to: `user${i}@far.nmtp.test`,
        headers: [`Subject: session ${i}`],
      }),
    ),
  );
  for (const s of sent) assert.equal(s.code, 0, s.transcript);
  const newDir = join(dir, 'maildir', 'new');
  await until(
    () => {
      try {
        return readdirSync(newDir).length >= SESSIONS ? true : undefined;
      } catch {
        return undefined;
      }
    },
    'every message stored by the receiver',
    60_000,
  );
  assert.equal(most, SESSIONS, `connections open at once through the relay: ${most}`);
});
