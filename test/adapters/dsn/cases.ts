/**
 * Builder cases shared by the golden-file test, the round-trip test and the Python
 * cross-check. Every value is fixed, so each case builds the same bytes every time.
 */
import type { BuildDsnInput, DsnSources } from '../../../adapters/dsn/index.ts';
import { enhancedStatus, type RecipientOutcome } from '../../../src/core/delivery/index.ts';

export const T0 = new Date('2026-11-29T03:40:00Z');
const T1 = new Date('2026-11-29T03:45:10Z');
const UNTIL = new Date('2026-12-04T03:40:00Z');

/** Deterministic sources: the golden comparison masks these anyway. */
export function fixedSources(boundaries: string[] = ['=_nmtp-dsn_0123456789abcdef']): DsnSources {
  let i = 0;
  return {
    now: () => new Date('2026-11-29T04:00:00Z'),
    messageId: (domain) => `<dsn.fixed@${domain}>`,
    boundary: () => boundaries[Math.min(i++, boundaries.length - 1)]!,
  };
}

export const ORIGINAL = Buffer.from(
  [
    'Return-Path: <alice@legacy.example>',
    'From: Alice <alice@legacy.example>',
    'To: bob@nmtp.example, carol@nmtp.example',
    'Subject: Quarterly report',
    'Date: Sun, 29 Nov 2026 03:39:58 +0000',
    'Message-ID: <q3.report@legacy.example>',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'Hello Bob,',
    '',
    'the report is attached in spirit.',
    '',
  ].join('\r\n'),
);

export const ORIGINAL_UTF8 = Buffer.from(
  [
    'From: Jürgen <jürgen@legacy.example>',
    'To: 用户@nmtp.example',
    'Subject: Grüße',
    'Date: Sun, 29 Nov 2026 03:39:58 +0000',
    'Message-ID: <gruesse@legacy.example>',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    'Schöne Grüße!',
    '',
  ].join('\r\n'),
);

const base = {
  reportingMta: 'gw.example.net',
  reportingDomain: 'example.net',
  returnPath: 'alice@legacy.example',
  envid: 'QQ314159',
  arrivalDate: T0,
  receivedFromMta: 'mx1.legacy.example',
};

const failedBob: RecipientOutcome = {
  recipient: { legacy: 'bob@nmtp.example', nmtp: 'bob@nmtp.example' },
  originalRecipient: { addrType: 'rfc822', address: 'bob@nmtp.example' },
  action: 'failed',
  status: enhancedStatus('5.1.1'),
  remoteMta: 'nmtp.nmtp.example',
  diagnostic: { type: 'nmtp', text: '5.1.1 no such mailbox here' },
  lastAttempt: T1,
};

const delayedCarol: RecipientOutcome = {
  recipient: { legacy: 'carol@nmtp.example' },
  action: 'delayed',
  status: enhancedStatus('4.2.0'),
  remoteMta: 'nmtp.nmtp.example',
  diagnostic: { type: 'nmtp', text: '4.2.0 held for review by the recipient' },
  lastAttempt: T1,
  willRetryUntil: UNTIL,
  cookie: { id: 'ck_1', minPollSeconds: 60, maxPollSeconds: 3600, expires: UNTIL },
};

const delivered: RecipientOutcome = {
  recipient: { legacy: 'dave@legacy2.example' },
  action: 'delivered',
  status: enhancedStatus('2.0.0'),
  remoteMta: 'lmtp.legacy2.example',
  diagnostic: { type: 'smtp', text: '250 2.0.0 Ok: queued as 4F1' },
  lastAttempt: T1,
};

const relayed: RecipientOutcome = {
  recipient: { legacy: 'erin@nmtp.example', nmtp: 'erin@nmtp.example' },
  action: 'relayed',
  status: enhancedStatus('2.0.0'),
  remoteMta: 'nmtp.nmtp.example',
  diagnostic: { type: 'nmtp', text: 'accepted id=r-77' },
  lastAttempt: T1,
  finalLogId: 'r-77',
};

const expanded: RecipientOutcome = {
  recipient: { legacy: 'team@legacy.example' },
  originalRecipient: { addrType: 'rfc822', address: 'team@legacy.example' },
  action: 'expanded',
  status: enhancedStatus('2.0.0'),
  lastAttempt: T1,
};

const failedUtf8: RecipientOutcome = {
  recipient: { nmtp: '用户@nmtp.example' },
  originalRecipient: { addrType: 'utf-8', address: '用户@nmtp.example' },
  action: 'failed',
  status: enhancedStatus('5.1.1'),
  remoteMta: 'nmtp.nmtp.example',
  diagnostic: { type: 'nmtp', text: '5.1.1 用户不存在 (no such user)' },
  lastAttempt: T1,
};

const longDiag: RecipientOutcome = {
  ...failedBob,
  recipient: { legacy: 'frank@legacy3.example' },
  originalRecipient: undefined,
  remoteMta: 'mx.legacy3.example',
  diagnostic: {
    type: 'smtp',
    text:
      '550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 ' +
      'double-checking the recipient\u2019s email address for typos or unnecessary spaces.'.replace(
        '\u2019',
        "'",
      ),
  },
};

export interface Case {
  readonly name: string;
  readonly input: BuildDsnInput;
}

export const CASES: readonly Case[] = [
  { name: 'failed', input: { ...base, recipients: [{ outcome: failedBob }], original: ORIGINAL } },
  {
    name: 'delayed-will-retry',
    input: { ...base, recipients: [{ outcome: delayedCarol }], original: ORIGINAL },
  },
  {
    name: 'delivered',
    input: {
      ...base,
      recipients: [{ outcome: delivered, notify: new Set(['SUCCESS']) }],
      original: ORIGINAL,
    },
  },
  {
    name: 'relayed',
    input: {
      ...base,
      recipients: [{ outcome: relayed, notify: new Set(['SUCCESS', 'FAILURE']) }],
    },
  },
  {
    name: 'expanded',
    input: {
      ...base,
      envid: undefined,
      recipients: [{ outcome: expanded, notify: new Set(['SUCCESS']) }],
    },
  },
  {
    name: 'mixed-multiple',
    input: {
      ...base,
      recipients: [
        { outcome: failedBob },
        { outcome: delayedCarol },
        { outcome: relayed, notify: new Set(['SUCCESS', 'FAILURE', 'DELAY']) },
        // NOTIFY=NEVER: this recipient must not appear.
        { outcome: { ...failedBob, recipient: { legacy: 'quiet@nmtp.example' } }, notify: 'NEVER' },
        { outcome: longDiag },
      ],
      ret: 'HDRS',
      original: ORIGINAL,
    },
  },
  {
    name: 'ret-hdrs',
    input: { ...base, recipients: [{ outcome: failedBob }], ret: 'HDRS', original: ORIGINAL },
  },
  {
    name: 'ret-full',
    input: { ...base, recipients: [{ outcome: failedBob }], ret: 'FULL', original: ORIGINAL },
  },
  {
    name: 'utf8-global',
    input: {
      ...base,
      returnPath: 'jürgen@legacy.example',
      recipients: [{ outcome: failedUtf8 }],
      ret: 'FULL',
      original: ORIGINAL_UTF8,
    },
  },
];
