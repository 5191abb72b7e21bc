/**
 * What the client host tests share: a client domain key published in a static TXT
 * resolver, self-signed certificates for loopback TLS, a mailbox receiver to send to, and
 * an SRV lookup that names it.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { encodeMessage } from '../../src/core/frame/index.ts';
import { domainKeyName, keyPairFromSeed, printDomainKeyRecord } from '../../src/core/keys/index.ts';
import type { SigningKey } from '../../src/core/sign/index.ts';
import { staticTxtResolver } from '../../src/dns/txt.ts';
import type { ClientIdentity, SrvLookup } from '../../src/client/transfer.ts';
import { generateSelfSigned } from '../../src/server/certs.ts';
import { serveMailbox, type Serving } from '../../src/server/serve.ts';

export const seed = randomBytes(32);
export const key = keyPairFromSeed(seed);
export const identity: ClientIdentity = { domain: 'example.org', selector: 's1', key };

export const resolveTxt = staticTxtResolver(
  new Map([
    [
      domainKeyName('s1', 'example.org'),
      [printDomainKeyRecord({ publicKey: key.publicKey, flags: '' })],
    ],
    ['_nmtpclient.example.org', ['v=NMTPCSV1; ip=127.0.0.1']],
  ]),
);

export interface World {
  readonly dir: string;
  /** The certificate of every trusted server (name 127.0.0.1). */
  readonly cert: { certFile: string; keyFile: string };
  readonly ca: Buffer;
  /** Another self-signed certificate nobody trusts (a redirect target's). */
  readonly untrusted: { certFile: string; keyFile: string };
  cleanup(): void;
}

export function world(prefix: string): World {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const cert = generateSelfSigned(join(dir, 'certs'), '127.0.0.1');
  const untrusted = generateSelfSigned(join(dir, 'untrusted'), 'laptop.invalid');
  return {
    dir,
    cert,
    ca: readFileSync(cert.certFile),
    untrusted,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A mailbox receiver over TLS on loopback; `policy` is written to its policy.json. */
export async function mailbox(
  w: World,
  name: string,
  o: {
    policy?: unknown;
    userKeys?: ReadonlyMap<string, SigningKey>;
    cert?: { certFile: string; keyFile: string };
    serverName?: string;
  } = {},
): Promise<Serving> {
  const maildir = join(w.dir, name);
  const s = await serveMailbox({
    host: '127.0.0.1',
    port: 0,
    ...(o.cert ?? w.cert),
    serverName: o.serverName ?? 'mx.example.net',
    maildir,
    resolveTxt,
    ...(o.userKeys === undefined ? {} : { userKeys: o.userKeys }),
  });
  if (o.policy !== undefined) writeFileSync(join(maildir, 'policy.json'), JSON.stringify(o.policy));
  return s;
}

/** The SRV answer naming `ports` on 127.0.0.1, in that order. */
export function srvOf(...ports: number[]): SrvLookup {
  return () =>
    Promise.resolve({
      status: 'ok',
      targets: ports.map((port, i) => ({ name: '127.0.0.1', port, priority: i, weight: 0 })),
    });
}

/** A small framed message with a text/plain part inside a multipart root. */
export function smallMessage(subject = 'hello'): Uint8Array {
  const utf8 = new TextEncoder();
  return encodeMessage({
    trace: [],
    root: {
      fields: [
        { name: 'Subject', value: subject },
        { name: 'Content-Type', value: 'multipart/mixed' },
      ],
      children: [
        {
          fields: [{ name: 'Content-Type', value: 'application/octet-stream' }],
          body: new Uint8Array([1, 2, 3]),
        },
        { fields: [{ name: 'Content-Type', value: 'text/plain' }], body: utf8.encode('hi\r\n') },
      ],
    },
  });
}
