/**
 * A self-signed certificate for tests and demos (`nmtp certs generate`), made by the
 * openssl command-line tool (on the machine, and in test/harness/debian-packages.txt):
 * an Ed25519 key and an X.509 certificate naming the host in its subjectAltName, which is
 * what node:tls checks.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

export interface GeneratedCert {
  readonly certFile: string;
  readonly keyFile: string;
}

/** With `reuse`, an existing pair in `outDir` is kept (so a demo server keeps its identity). */
export function generateSelfSigned(
  outDir: string,
  name: string,
  days = 30,
  reuse = false,
): GeneratedCert {
  mkdirSync(outDir, { recursive: true, mode: 0o700 });
  const certFile = join(outDir, `${name}.crt`);
  const keyFile = join(outDir, `${name}.key`);
  if (reuse && existsSync(certFile) && existsSync(keyFile)) return { certFile, keyFile };
  // "localhost" is loopback by definition: its certificate also names the loopback
  // addresses, so a client given 127.0.0.1 (no name lookup) checks it too.
  const san = /^[0-9.]+$|:/.test(name)
    ? `IP:${name}`
    : name === 'localhost'
      ? 'DNS:localhost,IP:127.0.0.1,IP:::1'
      : `DNS:${name}`;
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ed25519',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      String(days),
      '-subj',
      `/CN=${name}`,
      '-addext',
      `subjectAltName=${san}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return { certFile, keyFile };
}
