/**
 * "A client signs a proof only for the server it has verified: when it checked the
 * certificate against a DNS name, the greeting's server name MUST be that name" (§60.8.1),
 * over real TLS on loopback: a receiver whose certificate names `localhost` but whose
 * greeting names another server gets no HELLO; one whose greeting names `localhost` gets the
 * message. (An SRV target that is an IP address, or a redirect target, has no name checked.)
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NmtpError } from '../../src/core/errors/index.ts';
import { deliver } from '../../src/client/transfer.ts';
import { generateSelfSigned } from '../../src/server/certs.ts';
import { identity, mailbox, smallMessage, world } from './helpers.ts';

const w = world('nmtp-server-name-');
const cert = generateSelfSigned(join(w.dir, 'localhost-cert'), 'localhost');
const ca = readFileSync(cert.certFile);
after(() => w.cleanup());

/** One delivery to bob@example.net at `localhost`, the SRV target name. */
async function sendTo(port: number) {
  return deliver('example.net', ['bob@example.net'], smallMessage('name'), identity, {
    srv: () =>
      Promise.resolve({
        status: 'ok',
        targets: [{ name: 'localhost', port, priority: 0, weight: 0 }],
      }),
    ca,
  });
}

test('the greeting names another server than the certificate: no proof, a temporary failure with the code', async () => {
  const s = await mailbox(w, 'other', { cert, serverName: 'mx.example.net' });
  try {
    const r = await sendTo(s.port);
    assert.deepEqual(r.recipients, []);
    assert.deepEqual(r.unanswered, ['bob@example.net']);
    const failure = r.failure;
    assert.ok(failure instanceof NmtpError, JSON.stringify(r));
    assert.equal(failure.code, 'NMTP_ERR_TRANSPORT_SERVER_NAME_MISMATCH');
  } finally {
    await s.close();
  }
});

test('the greeting names the server the certificate was verified for: delivered', async () => {
  const s = await mailbox(w, 'same', { cert, serverName: 'localhost' });
  try {
    const r = await sendTo(s.port);
    assert.equal(r.recipients[0]?.reply.code, 250, JSON.stringify(r));
  } finally {
    await s.close();
  }
});
