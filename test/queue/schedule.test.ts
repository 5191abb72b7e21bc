/**
 * Recording answers (src/queue/schedule.ts afterDeliver, src/queue/work.ts smtpAsDeliver):
 * what an SMTP answer says besides its reply is kept with it; an NMTP receiver's reply
 * parameters of the same names are not (§60.6: "A client MUST ignore reply parameters it
 * does not know").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freshEntry } from '../../src/queue/meta.ts';
import { afterDeliver, DEFAULT_RETRY } from '../../src/queue/schedule.ts';
import { smtpAsDeliver } from '../../src/queue/work.ts';

const NOW = 1_800_000_000;
const entry = (rcpts: string[]) =>
  freshEntry({ id: 'E', user: 'a@example.org', recipients: rcpts }, 0, NOW, 86400);

test('an SMTP answer keeps whether the server offered DSN and which server it was', () => {
  const s = entry(['ok@l.example', 'no@l.example', 'later@l.example']);
  const out = afterDeliver(
    s,
    ['ok@l.example', 'no@l.example', 'later@l.example'],
    smtpAsDeliver({
      recipients: [
        { rcpt: 'ok@l.example', code: 250, text: 'queued', dsn: true, relay: 'mx[192.0.2.1]:25' },
        { rcpt: 'no@l.example', code: 550, enhanced: '5.1.1', text: 'unknown', relay: 'h:25' },
        { rcpt: 'later@l.example', code: 451, text: 'busy' },
      ],
    }),
    NOW,
    DEFAULT_RETRY,
  );
  const last = out.recipients.map((r) => [r.state, r.last?.code, r.last?.dsn, r.last?.relay]);
  assert.deepEqual(last, [
    ['accepted', 250, true, 'mx[192.0.2.1]:25'],
    ['rejected', 550, undefined, 'h:25'],
    ['pending', 450, undefined, undefined],
  ]);
});

test("an NMTP reply's parameters named dsn= or relay= are not taken for SMTP facts", () => {
  const s = entry(['bob@n.example']);
  const out = afterDeliver(
    s,
    ['bob@n.example'],
    {
      recipients: [
        {
          rcpt: 'bob@n.example',
          reply: {
            code: 250,
            enhanced: '2.0.0',
            params: { dsn: 'yes', relay: 'forged[192.0.2.9]:25' },
            text: 'accepted',
          },
        },
      ],
    },
    NOW,
    DEFAULT_RETRY,
  );
  const last = out.recipients[0]!.last!;
  assert.equal(out.recipients[0]!.state, 'accepted');
  assert.equal(last.dsn, undefined);
  assert.equal(last.relay, undefined);
});
