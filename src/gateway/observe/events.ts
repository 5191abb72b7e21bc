/**
 * The closed catalog of the gateway's log events: every line the gateway logs is one of
 * these names, with fields from one vocabulary (`FIELDS`), so an operator can grep a name
 * and know what else is on the line. Postfix's log lines were the model: "connect from",
 * "NOQUEUE: reject", "queued as", "status=sent/bounced/deferred", "removed".
 *
 * Adding an event is one line in `EVENTS`; the logger (log.ts) refuses any other name, at
 * compile time through `EventName` and at run time by throwing.
 *
 * A field listed as `'name'` is required on that event (the facts that define it), `'name?'`
 * optional; nothing else may be on the line except the logger's bindings (log.ts `child`).
 */
import type { ErrorCode } from '../../core/errors/index.ts';
import type { DeliveryAction } from '../../core/delivery/index.ts';
import type { EntryKind } from '../../queue/port.ts';
import type { RecipientState } from '../../queue/types.ts';
import type { RouteDecision } from '../ports.ts';

/** Every field an event may carry, and its type. */
export interface LogFields {
  service: string;
  listen: string;
  protocol: 'smtp' | 'lmtp' | 'nmtp' | 'http';
  session: string;
  client: string;
  clientPort: number;
  port: number;
  ports: Readonly<Record<string, number>>;
  key: string;
  helo: string;
  tls: string;
  user: string;
  queueId: string;
  origQueueId: string;
  messageId: string;
  from: string;
  rcpt: string;
  rcpts: number;
  messages: number;
  size: number;
  kind: EntryKind;
  backend: string;
  transport: RouteDecision['transport'];
  via: Extract<RouteDecision, { via: unknown }>['via'];
  why: string;
  code: number;
  enhanced: string;
  text: string;
  err: ErrorCode;
  detail: string;
  stack: string;
  relay: string;
  domain: string;
  remoteId: string;
  target: string;
  cookie: string;
  state: RecipientState;
  attempts: number;
  polls: number;
  delay: number;
  nextAt: number;
  action: DeliveryAction;
  version: string;
  services: readonly string[];
  file: string;
  signal: string;
  checks: Readonly<Record<string, boolean>>;
  entries: number;
  seconds: number;
}

export type FieldName = keyof LogFields;

/** What each field means: one line each (and the run-time list of field names). */
export const FIELDS = {
  service: 'the gateway service that logs: smtp-in, qmgr, nmtp-receiver, admin, dsn …',
  listen: "a listener's HOST:PORT",
  protocol: 'smtp, lmtp, nmtp or http',
  session: "the SMTP listener's session id: on every line of one connection",
  client: "the client's IP address (Postfix: client=)",
  clientPort: "the client's port",
  port: 'the port a listener is bound to',
  ports: 'bound ports by listener name',
  key: "the DNS name of the gateway's signing key record",
  helo: 'the HELO/EHLO/LHLO argument, as sent',
  tls: 'negotiated TLS version and cipher',
  user: 'the authenticated SMTP user, or the operator who ran a queue command',
  queueId: 'the queue entry id (also the NMTP transfer id)',
  origQueueId: 'the queue entry a DSN reports on',
  messageId: 'the Message-Id of the message, without angle brackets',
  from: "the reverse-path; '' is the null sender",
  rcpt: 'one recipient address (canonical), or the return path a DSN goes to',
  rcpts: 'how many recipients',
  messages: 'how many messages a connection delivered',
  size: 'octets',
  kind: 'what a queue entry holds: nmtp (framed, to NMTP) or smtp (legacy, to the smarthost)',
  backend: 'queue backend: embedded or bullmq',
  transport: 'routing decision: nmtp, smtp, temperror or invalid',
  via: 'what decided the route: address, domain, static-srv, dns-srv, dns-none, default',
  why: 'one line for people saying why',
  code: 'the reply code (SMTP or NMTP) given or received',
  enhanced: 'the RFC 3463 enhanced status code',
  text: 'reply text, one line, as given or received',
  err: 'the NMTP_ERR_* catalog code (docs/errors.md)',
  detail: 'what went wrong, for people (an exception message)',
  stack: 'stack trace of an unexpected exception',
  relay: 'the peer that answered: HOST:PORT, or NAME[ADDRESS]:PORT for an MX host',
  domain: 'a destination or client domain',
  remoteId: 'the id the receiver gave the message',
  target: 'where a redirect pointed',
  cookie: "the receiver's cookie for a deferred recipient",
  state: 'a recipient state: pending, accepted, deferred, rejected, given-up',
  attempts: 'delivery attempts made for the recipient so far',
  polls: 'STATUS polls made on the current cookie',
  delay: 'seconds since the message was queued',
  nextAt: 'unix seconds of the next attempt or poll',
  action: 'DSN action: failed, delayed, delivered, relayed, expanded',
  version: "the gateway's version",
  services: 'the services this process runs',
  file: 'a file, e.g. the configuration file',
  signal: 'the signal that stopped the process',
  checks: 'readiness checks and their results',
  entries: 'how many queue entries',
  seconds: 'a duration in seconds',
} as const satisfies Record<FieldName, string>;

export type EventLevel = 'debug' | 'info' | 'warn' | 'error' | 'fatal';
export type FieldSpec = FieldName | `${FieldName}?`;

export interface EventSpec {
  readonly level: EventLevel;
  readonly fields: readonly FieldSpec[];
  readonly summary: string;
}

function ev<const F extends readonly FieldSpec[]>(
  level: EventLevel,
  fields: F,
  summary: string,
): { readonly level: EventLevel; readonly fields: F; readonly summary: string } {
  return { level, fields, summary };
}

// Shared field lists: the same facts in the same names on every line of a kind.
const SMTP = ['session', 'client'] as const;
const REPLY = ['code?', 'enhanced?', 'err?', 'text?'] as const;
const OUT = ['queueId', 'rcpt'] as const;

/* prettier-ignore */
export const EVENTS = {
  // The process.
  'gateway.start': ev('info', ['version', 'services', 'file?', 'backend?'], 'The process starts: its version, services, and config file (none = embedded defaults).'),
  'gateway.listening': ev('info', ['service', 'port', 'protocol?', 'listen?'], 'A listener is bound and accepting connections (port: the bound one, when 0 was asked).'),
  'gateway.ready': ev('info', ['services?', 'ports?', 'backend?', 'key?', 'seconds?'], 'Every service listens and the queue answers: the gateway takes mail.'),
  'gateway.stop': ev('info', ['signal?', 'detail?'], 'Shutdown begins: listeners close, work in progress finishes.'),
  'gateway.stopped': ev('info', ['seconds?'], 'Shutdown finished; the process exits.'),
  'gateway.error': ev('error', ['detail', 'service?', 'err?', 'stack?', 'session?', 'queueId?', 'rcpt?'], 'An unexpected error in a service (handled as temporary): a bug or a broken resource.'),
  'config.invalid': ev('fatal', ['detail', 'file?', 'err?'], 'The configuration does not validate (the detail names each key); the process does not start.'),
  'log.invalid': ev('error', ['detail'], 'Something logged a name or field outside this catalog (a bug); detail says what.'),

  // SMTP in (smtp-in).
  'smtp.connect': ev('info', [...SMTP, 'clientPort?', 'protocol?'], 'A client connected to an SMTP or LMTP listener (Postfix: connect from).'),
  'smtp.refused': ev('info', [...SMTP, ...REPLY], 'A client refused at connect: connection limits or policy (421/554).'),
  'smtp.tls': ev('info', [...SMTP, 'tls'], 'STARTTLS completed.'),
  'smtp.tls.failed': ev('warn', [...SMTP, 'detail'], 'A STARTTLS handshake failed.'),
  'smtp.mail.refused': ev('info', [...SMTP, 'from', 'helo?', ...REPLY, 'detail?'], 'MAIL FROM refused (Postfix: NOQUEUE: reject).'),
  'smtp.rcpt.refused': ev('info', [...SMTP, 'rcpt', 'from?', 'helo?', ...REPLY, 'detail?'], 'RCPT TO refused: relay denied, bad address, too many, routing failed for now.'),
  'smtp.message.queued': ev('info', [...SMTP, 'queueId', 'messageId?', 'from?', 'rcpts?', 'size?'], 'The message is stored in the queue and 250 sent (Postfix: queued as).'),
  'smtp.message.refused': ev('info', [...SMTP, 'from?', 'rcpts?', 'size?', ...REPLY, 'detail?'], 'The message refused at the end of DATA: size, bare line ends, conversion, storage.'),
  'smtp.timeout': ev('info', [...SMTP, 'detail'], 'A client was too slow (command timeout, DATA timeout, minimum data rate) and was disconnected.'),
  'smtp.disconnect': ev('info', [...SMTP, 'messages?', 'seconds?'], 'The connection ended (Postfix: disconnect from).'),

  // The legacy boundary.
  'convert.failed': ev('warn', ['err', 'session?', 'client?', 'queueId?', 'from?', 'detail?'], 'A legacy message could not become a framed message; it is refused with the code.'),
  'convert.warning': ev('info', ['err', 'session?', 'client?', 'queueId?', 'detail?'], 'Conversion succeeded with a repair or downgrade worth knowing (the code says which).'),
  'route.decided': ev('debug', ['rcpt', 'transport', 'session?', 'client?', 'via?', 'why?'], 'Which side a recipient goes to, and why.'),
  'route.temperror': ev('warn', ['rcpt', 'session?', 'client?', 'why?'], 'No routing decision now (DNS failed): the recipient gets 451 4.4.3.'),

  // The queue (qmgr).
  'queue.added': ev('info', ['queueId', 'kind', 'from?', 'rcpts?', 'size?', 'backend?', 'origQueueId?'], 'An entry is stored durably: nmtp for NMTP recipients, smtp for legacy ones and DSNs.'),
  'queue.retry': ev('info', ['queueId', 'user?'], "An operator made an entry's waiting recipients due now (queue retry)."),
  'queue.deleted': ev('info', ['queueId', 'user?'], 'An operator removed an entry and its message (queue delete).'),
  'queue.removed': ev('info', ['queueId', 'rcpts?'], 'Every recipient reached a final state; the message is gone (Postfix: removed).'),
  'queue.recovered': ev('info', ['backend', 'entries'], 'The backend started and found entries from before; each is worked on again.'),
  'queue.error': ev('error', ['detail', 'backend?', 'err?', 'queueId?'], 'The queue backend failed to store or read (disk, Redis); entries stay as they were.'),

  // Out to NMTP receivers.
  'nmtp.delivered': ev('info', [...OUT, 'relay?', 'remoteId?', 'attempts?', 'delay?'], 'The NMTP receiver accepted the recipient (final).'),
  'nmtp.rejected': ev('info', [...OUT, 'relay?', ...REPLY, 'attempts?', 'delay?'], 'The NMTP receiver refused the recipient for good (final; a DSN follows when asked for).'),
  'nmtp.deferred': ev('info', [...OUT, 'relay?', 'cookie?', 'nextAt?', 'text?'], 'The receiver holds the recipient and gave a cookie; the gateway polls it.'),
  'nmtp.tempfail': ev('info', [...OUT, 'relay?', ...REPLY, 'attempts?', 'nextAt?'], 'An attempt failed for now (unreachable, busy): retried at nextAt.'),
  'nmtp.polled': ev('debug', [...OUT, 'state', 'relay?', 'cookie?', 'polls?'], 'A STATUS poll on a cookie, and the state it answered.'),
  'nmtp.redirected': ev('info', [...OUT, 'target', 'relay?'], "The receiver redirected the recipient and the target proved the recipient's key."),
  'nmtp.given-up': ev('info', [...OUT, 'relay?', 'cookie?', 'delay?'], 'A deferred recipient abandoned at the maximum age: GIVEUP sent (final, 5.4.7).'),
  'nmtp.expired': ev('info', [...OUT, 'cookie?', 'delay?'], "No answer before the maximum age, or the receiver's cookie expired (final, 5.4.7)."),
  'nmtp.unreachable': ev('warn', ['domain', 'relay?', 'err?', 'detail?'], 'No server of a destination could be reached (SRV, connect, TLS): its recipients wait.'),

  // Out to the smarthost (legacy recipients and DSNs).
  'smtp-out.delivered': ev('info', [...OUT, 'relay?', ...REPLY, 'attempts?', 'delay?'], 'The smarthost (or MX host: relay) accepted the recipient (final; Postfix: status=sent).'),
  'smtp-out.rejected': ev('info', [...OUT, 'relay?', ...REPLY, 'attempts?', 'delay?'], 'The smarthost (or MX host: relay) refused the recipient with 5xx (final; Postfix: status=bounced).'),
  'smtp-out.deferred': ev('info', [...OUT, 'relay?', ...REPLY, 'attempts?', 'nextAt?'], 'A 4xx reply or no connection: retried at nextAt (Postfix: status=deferred).'),
  'smtp-out.expired': ev('info', [...OUT, 'delay?'], 'The recipient reached the maximum age without delivery (final).'),

  // Delivery status notifications.
  'dsn.queued': ev('info', ['queueId', 'origQueueId', 'action', 'rcpt?', 'rcpts?'], 'A DSN is written and queued to the return path (rcpt); rcpts = recipients it reports.'),
  'dsn.suppressed': ev('info', ['origQueueId', 'action', 'why', 'rcpt?'], 'No DSN: null sender, NOTIFY said no, or the return path is not believed (backscatter, §52.5).'),

  // The gateway's own NMTP receiver.
  'nmtp-in.accepted': ev('info', ['rcpt', 'client?', 'domain?', 'remoteId?', 'size?'], 'The receiver accepted a message for a local NMTP mailbox.'),
  'nmtp-in.refused': ev('info', ['client?', 'domain?', 'rcpt?', ...REPLY], 'The receiver refused a recipient or a message.'),

  'nmtp-in.recovered': ev('warn', ['detail'], "The receiver's start-up removed what a crash had left in its maildir (partial receptions, cookie temporaries, orphaned held messages)."),

  // The reverse direction (NMTP in → SMTP out, src/gateway/reverse/).
  'reverse.queued': ev('info', ['queueId', 'client', 'rcpts', 'size'], 'An NMTP message for legacy recipients was converted and queued for SMTP.'),
  'reverse.refused': ev('info', ['client', 'err', 'detail'], 'An NMTP message for legacy recipients was refused (signatures, conversion, unsafe octets).'),
  'reverse.giveup': ev('info', ['queueId', 'rcpt'], 'The NMTP sender gave a recipient up (GIVEUP) before it was delivered.'),
  'reverse.report': ev('info', ['queueId', 'rcpt', 'action', 'enhanced?'], 'A legacy DSN came back to the return path and updated a cookie.'),
  'reverse.report.ignored': ev('info', ['why', 'detail?', 'err?'], 'Mail to the return path that updates no cookie (not a report, unknown entry, unknown recipient).'),
} as const satisfies Record<string, EventSpec>;

export type EventName = keyof typeof EVENTS;

type SpecsOf<N extends EventName> = (typeof EVENTS)[N]['fields'][number];
type RequiredOf<N extends EventName> = Extract<SpecsOf<N>, FieldName>;
type OptionalOf<N extends EventName> =
  SpecsOf<N> extends infer S ? (S extends `${infer F extends FieldName}?` ? F : never) : never;

/** The fields of one event: its required ones, and its optional ones. */
export type EventFields<N extends EventName> = { [K in RequiredOf<N>]: LogFields[K] } & {
  [K in OptionalOf<N>]?: LogFields[K];
};

export function isEventName(name: string): name is EventName {
  return Object.hasOwn(EVENTS, name);
}

/** The catalog for people: one line per event (`name level summary [fields]`). */
export function catalogText(): string {
  const names = Object.keys(EVENTS) as EventName[];
  const width = Math.max(...names.map((n) => n.length));
  return names
    .map((n) => {
      const e: EventSpec = EVENTS[n];
      return `${n.padEnd(width)}  ${e.level.padEnd(5)}  ${e.summary}  [${e.fields.join(' ')}]`;
    })
    .join('\n');
}
