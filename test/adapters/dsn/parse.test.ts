/**
 * The DSN parser against real-world reports (read in place from ../shared/corpus — the
 * test FAILS if the corpus is missing), hand-written reports in the formats of other MTAs,
 * and broken inputs that must give coded errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { parseDsn, type ParsedDsn } from '../../../adapters/dsn/index.ts';
import { NmtpError } from '../../../src/core/errors/index.ts';

const corpus = new URL(
  '../../../../shared/corpus/mail-gem/multipart_report_emails/',
  import.meta.url,
);
const fixtures = new URL('../../fixtures/dsn/parse/', import.meta.url);
const read = (base: URL, name: string): Buffer => readFileSync(new URL(name, base));
const isCode = (code: string) => (e: unknown) => e instanceof NmtpError && e.code === code;

interface Summary {
  envid: string | undefined;
  reportingMta: string | undefined;
  global: boolean;
  returned: ParsedDsn['returned'];
  outcomes: {
    rcpt: string | undefined;
    orcpt: string | undefined;
    action: string;
    status: string;
    remote: string | undefined;
    diag: string | undefined;
    last: string | undefined;
    until: string | undefined;
  }[];
}

/** A compact, comparable view of a parsed report. */
function summary(p: ParsedDsn): Summary {
  return {
    envid: p.envid,
    reportingMta: p.reportingMta,
    global: p.global,
    returned: p.returned,
    outcomes: p.outcomes.map((o) => ({
      rcpt: o.recipient.legacy,
      orcpt: o.originalRecipient?.address,
      action: String(o.action),
      status: String(o.status),
      remote: o.remoteMta,
      diag: o.diagnostic === undefined ? undefined : `${o.diagnostic.type}; ${o.diagnostic.text}`,
      last: o.lastAttempt?.toISOString(),
      until: o.willRetryUntil?.toISOString(),
    })),
  };
}

const GMAIL_550 =
  "smtp; 550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 double-checking the recipient's email address for typos or 550-5.1.1 unnecessary spaces. Learn more at 550 5.1.1 http://mail.google.com/support/bin/answer.py?answer=6596 41si5422799iwn.27";
const postfixBounce: Summary = {
  envid: undefined,
  reportingMta: 'lvmail01.LL.com',
  global: false,
  returned: {
    type: 'message/rfc822',
    messageId: '<118707422.15521266992174819.JavaMail.root@lvmail01>',
  },
  outcomes: [
    'bbbbvhvbbvkjbhfbvbvjhb@gmail.com',
    'bscdbcjhasbcjhbdscbhbsdhcbj@gmail.com',
    'egyfefsdvsfvvhjsd@gmail.com',
    'kfhejkfbsjkjsbhds@gmail.com',
    'qfvhgsvhgsduiohncdhcvhsdfvsfygusd@gmail.com',
  ].map((a) => ({
    rcpt: a,
    orcpt: a,
    action: 'failed',
    status: '5.1.1',
    remote: 'gmail-smtp-in.l.google.com',
    diag: GMAIL_550,
    last: undefined,
    until: undefined,
  })),
};

/** Expected result for every file of the corpus directory (a new file fails the test). */
const CORPUS: Record<string, { summary: Summary; warnings: string[] }> = {
  // Postfix: 5 failed recipients, returned full message.
  'multi_address_bounce1.eml': { summary: postfixBounce, warnings: [] },
  'multi_address_bounce2.eml': { summary: postfixBounce, warnings: [] },
  // InterMail: the first "message/delivery-status" part is really prose; the second is the report.
  'multipart_report_multiple_status.eml': {
    summary: {
      envid: undefined,
      reportingMta: 'schemailmta04.ci.com',
      global: false,
      returned: {
        type: 'message/rfc822',
        messageId: '<4c2a146147ac8_61ff157c4ec1652df@s.h.c.mail>',
      },
      outcomes: [
        {
          rcpt: 'u@ci.com',
          orcpt: 'u@ci.com',
          action: 'failed',
          status: '5.3.0',
          remote: undefined,
          diag: undefined,
          last: undefined,
          until: undefined,
        },
      ],
    },
    warnings: ['skipped an unreadable message/delivery-status part'],
  },
  // Sendmail: delay warning with Last-Attempt-Date.
  'report_422.eml': {
    summary: {
      envid: undefined,
      reportingMta: 'mail11.ttttt.com.au',
      global: false,
      returned: {
        type: 'text/rfc822-headers',
        messageId: '<15655788.13.1200472642578.JavaMail.Administrator@mail.ttttt.com.au>',
      },
      outcomes: [
        {
          rcpt: 'fraser@oooooooo.com.au',
          orcpt: undefined,
          action: 'delayed',
          status: '4.2.2',
          remote: 'mail.oooooooo.com.au',
          diag: 'smtp; 452 4.2.2 <fraser@oooooooo.com.au>... Mailbox full',
          last: '2008-01-16T16:40:52.000Z',
          until: undefined,
        },
      ],
    },
    warnings: [],
  },
  // Sendmail: permanent failure.
  'report_530.eml': {
    summary: {
      envid: undefined,
      reportingMta: 'mail12.rrrr.com.au',
      global: false,
      returned: {
        type: 'text/rfc822-headers',
        messageId: '<200712232303.lBNN3jDq002941@mail12.rrrr.com.au>',
      },
      outcomes: [
        {
          rcpt: 'edwin@zzzzzzz.com',
          orcpt: undefined,
          action: 'failed',
          status: '5.3.0',
          remote: 'mail.zzzzzz.com',
          diag: 'smtp; 553 5.3.0 <edwin@zzzzzzz.com>... Unknown E-Mail Address',
          last: '2007-12-23T23:03:53.000Z',
          until: undefined,
        },
      ],
    },
    warnings: [],
  },
};

test('corpus directory is present (CI has ../shared beside the clone)', () => {
  assert.ok(existsSync(corpus), `missing corpus ${corpus.pathname}`);
});

test('every corpus report parses to its expected outcomes', () => {
  const files = readdirSync(corpus).sort();
  assert.deepEqual(files, Object.keys(CORPUS).sort(), 'corpus files and expectations differ');
  for (const f of files) {
    const p = parseDsn(read(corpus, f));
    assert.deepEqual(summary(p), CORPUS[f]!.summary, f);
    assert.deepEqual(p.warnings, CORPUS[f]!.warnings, f);
  }
});

test('Postfix delay report: base64 status part, upper/lower-case names, ENVID, LF line ends', () => {
  const p = parseDsn(read(fixtures, 'postfix-delayed-envid.lf.eml'));
  assert.deepEqual(summary(p), {
    envid: 'gw-0042',
    reportingMta: 'mx.legacy.example',
    global: false,
    returned: { type: 'text/rfc822-headers', messageId: '<nmtp-transfer-0042@gw.example.net>' },
    outcomes: [
      {
        rcpt: 'carol@legacy2.example',
        orcpt: 'carol@legacy2.example',
        action: 'delayed',
        status: '4.4.1',
        remote: undefined,
        diag: 'x-postfix; connect to mx.legacy2.example[198.51.100.7]:25: Connection timed out',
        last: undefined,
        until: '2026-12-03T04:00:00.000Z',
      },
    ],
  });
  assert.equal(p.arrivalDate?.toISOString(), '2026-11-29T04:00:00.000Z');
  assert.deepEqual(p.warnings, []);
});

test('Exim report: Action before Final-Recipient, extension fields ignored', () => {
  const p = parseDsn(read(fixtures, 'exim-failed.eml'));
  assert.equal(p.envid, 'gw-7f3a9c');
  assert.deepEqual(summary(p).outcomes, [
    {
      rcpt: 'nobody@remote.example',
      orcpt: undefined,
      action: 'failed',
      status: '5.0.0',
      remote: 'mx.remote.example',
      diag: 'smtp; 550 5.1.1 <nobody@remote.example>: Recipient address rejected: User unknown',
      last: undefined,
      until: undefined,
    },
  ]);
  assert.equal(p.returned?.messageId, '<hello.1@legacy.example>');
});

test('Exchange report: nested alternative first part, 5.1.10, folded diagnostic', () => {
  const p = parseDsn(read(fixtures, 'exchange-failed.eml'));
  const o = p.outcomes[0]!;
  assert.equal(p.outcomes.length, 1);
  assert.equal(o.status, '5.1.10');
  assert.equal(o.recipient.legacy, 'ghost@contoso.example');
  assert.equal(
    o.diagnostic?.text,
    '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient ghost@contoso.example not found by SMTP address lookup',
  );
  assert.equal(p.receivedFromMta, 'gw.example.net');
  assert.equal(p.returned?.messageId, '<contract.2@legacy.example>');
});

test('RFC 6533 global report: UTF-8 addresses, \\x{} in utf-8 addresses decoded', () => {
  const p = parseDsn(read(fixtures, 'global-utf8.eml'));
  assert.equal(p.global, true);
  assert.equal(p.envid, 'gw-utf8-1');
  const o = p.outcomes[0]!;
  assert.deepEqual(o.recipient, { legacy: '用户@legacy.example', legacyType: 'utf-8' });
  assert.deepEqual(o.originalRecipient, { addrType: 'utf-8', address: '用户@legacy.example' });
  assert.equal(o.diagnostic?.text, '550 5.1.1 用户不存在');
  assert.deepEqual(p.returned, {
    type: 'message/global-headers',
    messageId: '<utf8-1@gw.example.net>',
  });
});

test('tolerant repairs are made and recorded', () => {
  const p = parseDsn(read(fixtures, 'sparse-tolerant.eml'));
  assert.deepEqual(
    p.outcomes.map((o) => [o.recipient.legacy, o.action, o.status]),
    [
      ['x@odd.example', 'delayed', '4.7.0'],
      ['y@odd.example', 'delivered', '2.0.0'],
    ],
  );
  assert.deepEqual(p.warnings, [
    'per-message fields missing',
    'Final-Recipient without address-type; taken as rfc822',
    'Action missing for x@odd.example; implied delayed from Status',
    'unreadable last-attempt-date: "not a date"',
    'Status missing for y@odd.example; implied 2.0.0 from Action',
  ]);
});

const report = (type: string, status: string, extra = ''): Buffer =>
  Buffer.from(
    `From: a@b\r\nContent-Type: ${type}\r\n${extra}\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n` +
      `--b\r\nContent-Type: message/delivery-status\r\n\r\n${status}\r\n--b--\r\n`,
  );
const GOOD_STATUS =
  'Reporting-MTA: dns; m.example\r\n\r\nFinal-Recipient: rfc822; x@y\r\nAction: failed\r\nStatus: 5.1.1\r\n';

test('coded errors for non-DSNs and malformed reports', () => {
  assert.equal(
    parseDsn(report('multipart/report; report-type=delivery-status; boundary=b', GOOD_STATUS))
      .outcomes.length,
    1,
  );
  const cases: [Buffer, string][] = [
    [
      Buffer.from('From: a@b\r\nSubject: plain\r\n\r\nHi. This is the qmail-send program.\r\n'),
      'NMTP_ERR_DSN_NOT_A_REPORT',
    ],
    [report('multipart/mixed; boundary=b', GOOD_STATUS), 'NMTP_ERR_DSN_NOT_A_REPORT'],
    [
      report('multipart/report; report-type=disposition-notification; boundary=b', GOOD_STATUS),
      'NMTP_ERR_DSN_NOT_A_REPORT',
    ],
    [
      report('multipart/report; report-type=delivery-status', GOOD_STATUS),
      'NMTP_ERR_DSN_MALFORMED',
    ],
    [
      report('multipart/report; report-type=delivery-status; boundary=zz', GOOD_STATUS),
      'NMTP_ERR_DSN_MALFORMED',
    ],
    [
      Buffer.from(
        'Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\n\r\nhi\r\n--b--\r\n',
      ),
      'NMTP_ERR_DSN_NO_STATUS_PART',
    ],
    [
      report(
        'multipart/report; report-type=delivery-status; boundary=b',
        'Reporting-MTA: dns; m\r\n',
      ),
      'NMTP_ERR_DSN_MALFORMED',
    ],
    [
      report(
        'multipart/report; report-type=delivery-status; boundary=b',
        'Reporting-MTA: dns; m\r\n\r\nFinal-Recipient: rfc822; x@y\r\n',
      ),
      'NMTP_ERR_DSN_MALFORMED',
    ],
    [
      report(
        'multipart/report; report-type=delivery-status; boundary=b',
        'Reporting-MTA: dns; m\r\n\r\nAction: failed\r\nStatus: 5.1.1\r\n',
      ),
      'NMTP_ERR_DSN_MALFORMED',
    ],
    [
      report(
        'multipart/report; report-type=delivery-status; boundary=b',
        GOOD_STATUS.replace('5.1.1', '550'),
      ),
      'NMTP_ERR_DSN_MALFORMED',
    ],
    [
      report(
        'multipart/report; report-type=delivery-status; boundary=b',
        GOOD_STATUS.replace('failed', 'bounced'),
      ),
      'NMTP_ERR_DSN_MALFORMED',
    ],
    [
      report(
        'multipart/report; report-type=delivery-status; boundary=b',
        'just some words\r\n\r\nmore words\r\n',
      ),
      'NMTP_ERR_DSN_MALFORMED',
    ],
  ];
  for (const [input, code] of cases) {
    assert.throws(() => parseDsn(input), isCode(code), input.toString('latin1').slice(0, 120));
  }
  assert.throws(
    () => parseDsn(new Uint8Array(101), { maxBytes: 100 }),
    isCode('NMTP_ERR_DSN_TOO_LARGE'),
  );
});

test('real Postfix 3.7 reports (generated in a local sandbox): global expired, success', () => {
  const g = parseDsn(read(fixtures, 'postfix-3.7-global-expired.lf.eml'));
  assert.equal(g.global, true);
  assert.equal(g.envid, 'gw-envid-004');
  assert.deepEqual(summary(g).outcomes, [
    {
      rcpt: '用户@far.example',
      orcpt: '用户@far.example',
      action: 'failed',
      status: '5.4.1',
      remote: undefined,
      diag: 'x-postfix; connect to 127.0.0.1[127.0.0.1]:2: Connection refused',
      last: undefined,
      until: undefined,
    },
  ]);
  assert.deepEqual(g.warnings, [
    'Status 4.4.1 disagrees with Action failed for 用户@far.example; taken as 5.4.1',
  ]);
  assert.deepEqual(g.returned, {
    type: 'message/global-headers',
    messageId: '<engc-utf8-1@mx.engc.test>',
  });

  const ok = parseDsn(read(fixtures, 'postfix-3.7-success.lf.eml'));
  assert.equal(ok.envid, 'gw-envid-003');
  assert.deepEqual(
    ok.outcomes.map((o) => [o.recipient.legacy, o.action, o.status, o.diagnostic?.text]),
    [['engcuser@mx.engc.test', 'delivered', '2.0.0', 'delivery via local: delivered to mailbox']],
  );
  assert.deepEqual(ok.warnings, []);
});
