/**
 * The gateway's logger: pino behind `GatewayLog`, which takes only the catalog's event names
 * (events.ts) with their typed fields.
 *
 * Output goes to stderr (stdout is for command output), written synchronously: a line
 * logged just before a crash or a `process.exit` (config.invalid) is not lost in a buffer.
 *   - `json` (default): one JSON object per line, `event` first after pino's own keys:
 *     {"level":"info","time":"…","pid":…,"hostname":"…","service":"smtp-in","event":"smtp.connect",…}
 *   - `pretty`: one readable line, `time level event key=value …`, written by our own
 *     formatter in this thread. pino-pretty is not used: pino runs it as a transport in a
 *     worker thread, which loses the last lines when the process exits abruptly.
 */
import { hostname } from 'node:os';
import { pino, type DestinationStream, type Logger } from 'pino';
import { NmtpError, type ErrorCode } from '../../core/errors/index.ts';
import { classify } from '../../core/errors/policy.ts';
import {
  EVENTS,
  FIELDS,
  isEventName,
  type EventFields,
  type EventLevel,
  type EventName,
  type FieldName,
  type LogFields,
} from './events.ts';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
/** `auto`: pretty when stderr is a terminal, JSON lines otherwise. */
export type LogFormat = 'json' | 'pretty' | 'auto';

type Args<T> = object extends T ? [fields?: T] : [fields: T];

/**
 * The one logging interface services get. `B` are the fields bound by `child()`: they are on
 * every line already, so an event may not give them again.
 */
export interface GatewayLog<B extends FieldName = never> {
  /**
   * Logs one catalog event at its level. Anything else (a name or field outside the
   * catalog, a required field missing) throws NMTP_ERR_INVALID_ARGUMENT when the logger is
   * strict, and is otherwise written as one `log.invalid` line instead.
   */
  event<N extends EventName>(name: N, ...fields: Args<Omit<EventFields<N>, B>>): void;
  /** A logger whose lines all carry `bindings` (e.g. the service, or one SMTP session). */
  child<K extends Exclude<FieldName, B>>(bindings: Pick<LogFields, K>): GatewayLog<B | K>;
  /** Whether an event of this level would be written (to skip building costly fields). */
  enabled(level: EventLevel): boolean;
}

export interface LogOptions {
  readonly level?: LogLevel;
  readonly format?: LogFormat;
  /** Where lines go; default stderr. Tests pass a collector. */
  readonly destination?: { write(line: string): unknown };
  /** Unix milliseconds now, for the time of each line; default Date.now. */
  readonly now?: () => number;
  /**
   * Throw on an event outside the catalog (tests, so a service's mistake fails its test).
   * Default false: a running gateway never fails a delivery because of a log line; it logs
   * `log.invalid` with what was refused.
   */
  readonly strict?: boolean;
}

/** A logger from the `log` section of the configuration (and test options). */
export function createGatewayLog(options: LogOptions = {}): GatewayLog {
  const level = options.level ?? 'info';
  const now = options.now ?? Date.now;
  const sink: DestinationStream =
    options.destination ??
    (level === 'silent' ? { write: () => undefined } : pino.destination({ fd: 2, sync: true }));
  const pretty =
    options.format === 'pretty' ||
    (options.format === 'auto' && options.destination === undefined && process.stderr.isTTY);
  const stream: DestinationStream = pretty
    ? { write: (line) => void sink.write(prettyLine(line)) }
    : sink;
  const logger = pino(
    {
      level,
      base: { pid: process.pid, hostname: hostname() },
      timestamp: () => `,"time":"${new Date(now()).toISOString()}"`,
      formatters: { level: (label) => ({ level: label }) },
    },
    stream,
  );
  return new PinoLog(logger, new Set(), options.strict ?? false);
}

/** A logger that writes nothing but throws on what is not in the catalog (tests). */
export function silentLog(): GatewayLog {
  return createGatewayLog({ level: 'silent', strict: true });
}

/**
 * The logger as an untyped `(name, fields)` callback, for a module that reports events by
 * string (an adapter's `onEvent`). Checked at run time only: with a strict logger a name or
 * field outside the catalog throws, otherwise it becomes a `log.invalid` line.
 */
export function eventSink<B extends FieldName>(
  log: GatewayLog<B>,
): (name: string, fields?: Readonly<Record<string, unknown>>) => void {
  return log.event as (name: string, fields?: Readonly<Record<string, unknown>>) => void;
}

/**
 * `err` and `detail` for any thrown value, through the one error policy (unknown errors are
 * NMTP_ERR_INTERNAL, temporary): `log.event('gateway.error', errorFields(e))`.
 */
export function errorFields(e: unknown): { err: ErrorCode; detail: string; stack?: string } {
  const v = classify(e);
  const stack = v.code === 'NMTP_ERR_INTERNAL' && e instanceof Error ? e.stack : undefined;
  return stack === undefined
    ? { err: v.code, detail: v.message }
    : { err: v.code, detail: v.message, stack };
}

const ALLOWED = new Map<string, { readonly allowed: Set<string>; readonly required: string[] }>(
  Object.entries(EVENTS).map(([name, spec]) => {
    const fields: readonly string[] = spec.fields;
    return [
      name,
      {
        allowed: new Set(fields.map((f) => (f.endsWith('?') ? f.slice(0, -1) : f))),
        required: fields.filter((f) => !f.endsWith('?')),
      },
    ];
  }),
);

class PinoLog {
  constructor(
    private readonly logger: Logger,
    private readonly bound: ReadonlySet<string>,
    private readonly strict: boolean,
  ) {}

  // Arrow properties: `log.event` may be handed around detached (an `onEvent` callback).
  readonly event = (name: string, fields: Record<string, unknown> = {}): void => {
    // The types already refuse these; this catches a cast, plain JS, or a field spread in.
    const wrong = this.check(name, fields);
    if (wrong !== undefined) {
      const detail = `log event ${JSON.stringify(name)}: ${wrong}`;
      if (this.strict) throw new NmtpError('NMTP_ERR_INVALID_ARGUMENT', detail);
      this.logger.error({ event: 'log.invalid', detail: `${detail}; fields ${safeJson(fields)}` });
      return;
    }
    const level = EVENTS[name as EventName].level;
    if (!this.logger.isLevelEnabled(level)) return;
    this.logger[level]({ event: name, ...fields });
  };

  /** What is wrong with an event, if anything. */
  private check(name: string, fields: Record<string, unknown>): string | undefined {
    const spec = isEventName(name) ? ALLOWED.get(name) : undefined;
    if (spec === undefined) return 'not in the catalog (src/gateway/observe/events.ts)';
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue;
      if (this.bound.has(k)) return `"${k}" is bound by child() already`;
      if (!spec.allowed.has(k)) return `"${k}" is not one of its fields`;
    }
    for (const k of spec.required) {
      if (fields[k] === undefined && !this.bound.has(k)) return `"${k}" is missing`;
    }
    return undefined;
  }

  readonly child = (bindings: Record<string, unknown>): PinoLog => {
    const bound = new Set(this.bound);
    for (const [k, v] of Object.entries(bindings)) {
      if (v === undefined) continue;
      if (!Object.hasOwn(FIELDS, k) || bound.has(k)) {
        const detail = `log binding "${k}" is not a field, or is bound already`;
        if (this.strict) throw new NmtpError('NMTP_ERR_INVALID_ARGUMENT', detail);
        this.logger.error({ event: 'log.invalid', detail });
        continue;
      }
      bound.add(k);
    }
    const kept = Object.fromEntries(
      [...bound].filter((k) => !this.bound.has(k)).map((k) => [k, bindings[k]]),
    );
    return new PinoLog(this.logger.child(kept), bound, this.strict);
  };

  readonly enabled = (level: EventLevel): boolean => this.logger.isLevelEnabled(level);
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

// pino's keys that the pretty line shows in its own places, or not at all.
const PRETTY_SKIP = new Set(['level', 'time', 'event', 'pid', 'hostname']);

/**
 * One JSON line as `time level event key=value …`. A value is quoted (JSON string syntax)
 * when it is empty or holds a space, quote, `=` or any control character, so a client's
 * HELO or address can neither break the line nor send escape sequences to the terminal.
 */
export function prettyLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const parts = [String(o.time ?? ''), String(o.level ?? '').padEnd(5), String(o.event ?? '-')];
  for (const [k, v] of Object.entries(o)) {
    if (PRETTY_SKIP.has(k) || v === undefined) continue;
    parts.push(`${k}=${prettyValue(v)}`);
  }
  return `${parts.join(' ')}\n`;
}

function prettyValue(v: unknown): string {
  if (typeof v === 'string' && v !== '' && !/[\s"=\\\p{C}\p{Z}]/u.test(v)) return v;
  // JSON escapes only C0 controls; C1 controls (U+009B is a CSI), bidi overrides and other
  // format or unassigned characters are escaped here as well.
  return (JSON.stringify(v) ?? 'null').replace(/[\p{C}\p{Zl}\p{Zp}]/gu, (c) =>
    Array.from(
      { length: c.length },
      (_, i) => `\\u${c.charCodeAt(i).toString(16).padStart(4, '0')}`,
    ).join(''),
  );
}
