/**
 * The published SMTP smuggling end-of-data variants (CVE-2023-51764/51765/51766 class),
 * placed inside NMTP framed messages, for the outgoing-guard tests (unit: conversion and the
 * guard; integration: real smtp-server and a lenient sink after nodemailer).
 *
 * Variants: the union of SEC Consult's SMTP-Smuggling-Tools (inbound and outbound lists)
 * and hannob/smtpsmug, plus `.\n` and the real terminator itself (which only dot-stuffing
 * keeps inside the content).
 */
import type { Field, FramedMessage, Part } from '../../../src/core/frame/index.ts';
import { decodeMessage, encodeMessage } from '../../../src/core/frame/index.ts';

export const VARIANTS: readonly (readonly [string, string])[] = [
  ['lf.lf', '\n.\n'],
  ['lf.cr', '\n.\r'],
  ['cr.lf', '\r.\n'],
  ['cr.cr', '\r.\r'],
  ['lf.crlf', '\n.\r\n'],
  ['crlf.lf', '\r\n.\n'],
  ['cr.crlf', '\r.\r\n'],
  ['crlf.cr', '\r\n.\r'],
  ['crlf-nul.crlf', '\r\n\x00.\r\n'],
  ['crlf.nul-crlf', '\r\n.\x00\r\n'],
  ['crlf.crcrlf', '\r\n.\r\r\n'],
  ['crcrlf.crcrlf', '\r\r\n.\r\r\n'],
  ['.lf', '.\n'],
  ['crlf.crlf', '\r\n.\r\n'],
];

/** What an attacker appends after the terminator: a whole second transaction. */
export const SMUGGLED =
  'MAIL FROM:<admin@victim.example>\r\nRCPT TO:<ceo@victim.example>\r\nDATA\r\n' +
  'From: Admin <admin@victim.example>\r\nTo: ceo@victim.example\r\nSubject: smuggled\r\n\r\n' +
  'Pay the invoice.\r\n.\r\n';

const enc = new TextEncoder();
const f = (name: string, value: string): Field => ({ name, value });
const MESSAGE_FIELDS = [
  f('From', 'Mallory <mallory@nmtp.example>'),
  f('To', '<bob@legacy.example>'),
  f('Subject', 'quarterly numbers'),
  f('Date', '2026-12-07T10:00:00+00:00'),
  f('Message-Id', '<smuggle@nmtp.example>'),
];

export interface Placement {
  readonly name: string;
  readonly build: (payload: Uint8Array) => FramedMessage;
}

const text = (body: Uint8Array, type = 'text/plain'): Part => ({
  fields: [f('Content-Type', type)],
  body,
});
const message = (root: Part): FramedMessage => ({
  trace: [],
  root: { fields: [...MESSAGE_FIELDS, ...root.fields], ...bodyOf(root) },
});
function bodyOf(p: Part): { body: Uint8Array } | { children: Part[] } {
  return 'children' in p ? { children: [...p.children] } : { body: p.body };
}

export const PLACEMENTS: readonly Placement[] = [
  { name: 'text body', build: (p) => message(text(p)) },
  {
    name: 'legacy-text body',
    build: (p) => message(text(p, 'application/x-nmtp-legacy-text; type=text/plain')),
  },
  {
    name: 'binary attachment',
    build: (p) =>
      message({
        fields: [f('Content-Type', 'multipart/mixed')],
        children: [
          text(enc.encode('see attachment\r\n')),
          {
            fields: [
              f('Content-Type', 'application/octet-stream'),
              f('Content-Disposition', 'attachment'),
              f('Content-Filename', 'numbers.bin'),
            ],
            body: p,
          },
        ],
      }),
  },
  {
    name: 'message/rfc822 leaf',
    build: (p) =>
      message({
        fields: [f('Content-Type', 'multipart/mixed')],
        children: [
          text(enc.encode('forwarded\r\n')),
          {
            fields: [f('Content-Type', 'message/rfc822')],
            body: Buffer.concat([enc.encode('Subject: inner\r\n\r\n'), p, enc.encode('\r\n')]),
          },
        ],
      }),
  },
  {
    name: 'nested message/nmtp',
    build: (p) =>
      message({
        fields: [f('Content-Type', 'message/nmtp')],
        children: [
          {
            fields: [
              f('From', '<eve@nmtp.example>'),
              f('Subject', 'inner'),
              f('Content-Type', 'text/plain'),
            ],
            body: p,
          },
        ],
      }),
  },
];

/** The payloads around one variant: in the middle, at the very end, at the very start. */
export function payloads(variant: string): readonly (readonly [string, Uint8Array])[] {
  return [
    ['middle', enc.encode(`Dear Bob,\r\nthe numbers${variant}${SMUGGLED}regards\r\n`)],
    ['end', enc.encode(`Dear Bob,\r\nthe numbers${variant}${SMUGGLED}`)],
    ['start', enc.encode(`${variant}${SMUGGLED}`)],
  ];
}

/**
 * The framed message as a receiver has it: encoded and decoded by the frame codec (so it is
 * a valid NMTP message). Throws what the codec refuses.
 */
export function throughCodec(m: FramedMessage): FramedMessage {
  return decodeMessage(encodeMessage(m));
}

/** Header fields that carry a variant: the frame codec must refuse every one. */
export function headerCases(variant: string): readonly FramedMessage[] {
  const v = `x${variant}${SMUGGLED}y`;
  return [
    message({
      fields: [f('Content-Type', 'text/plain'), f('X-Note', v)],
      body: enc.encode('hi\r\n'),
    }),
    {
      trace: [],
      root: {
        fields: [
          ...MESSAGE_FIELDS.filter((x) => x.name !== 'Subject'),
          f('Subject', v),
          f('Content-Type', 'text/plain'),
        ],
        body: enc.encode('hi\r\n'),
      },
    },
    {
      trace: [f('Trace', v)],
      root: {
        fields: [...MESSAGE_FIELDS, f('Content-Type', 'text/plain')],
        body: enc.encode('hi\r\n'),
      },
    },
  ];
}
