/**
 * Run by pool.test.ts in a child process: delivers `count` messages to 127.0.0.1:<port>
 * through the SMTP deliverer, prints each answer's code, calls close() and then does
 * nothing more. The process has to exit on its own: a pooled socket or timer left behind
 * would keep it alive.
 *
 *   node --import tsx test/adapters/smtp-sender/close-exits.fixture.ts <port> [count]
 */
import { smtpDeliverer } from '../../../adapters/smtp-sender/smtp-deliver.ts';
import { rawSource } from './scripted-server.ts';

const port = Number(process.argv[2]);
const count = Number(process.argv[3] ?? 3);
const bytes = Buffer.from('From: a@legacy.example\r\nSubject: close\r\n\r\nbody\r\n');
const send = smtpDeliverer({ host: '127.0.0.1', port, tls: 'none', name: 'gw.example.net' });
const codes = await Promise.all(
  Array.from({ length: count }, async (_, i) => {
    const out = await send({
      id: `QQclose${i}-s`,
      mailFrom: 'a@legacy.example',
      recipients: [`r${i}@legacy.example`],
      meta: { origin: 'smtp-in', mailFrom: 'a@legacy.example', arrival: 0 },
      recipientMeta: [{ legacy: `r${i}@legacy.example` }],
      message: rawSource(bytes),
    });
    return out.recipients[0]?.code ?? out.failure;
  }),
);
process.stdout.write(codes.join(' ') + '\n');
await send.close();
