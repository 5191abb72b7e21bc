/**
 * Transcript files (test/vectors/transport/*.txt, format in its README.md and in
 * docs/protocol.md §60.13): parse them, and run the client side of one through
 * the codec and a server reducer against the test world, with no sockets.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import {
  WireDecoder,
  NEED_MORE,
  END,
  encodeReply,
  encodeChunk,
  type WireItem,
} from '../../../src/core/wire/index.ts';
import {
  initialSubmissionServer,
  initialTransferServer,
  submissionServer,
  transferServer,
  type SubmissionAction,
  type SubmissionEvent,
  type SubmissionState,
  type TransferServerAction,
  type TransferServerEvent,
  type TransferServerState,
} from '../../../src/core/session/index.ts';
import { World, type Directives } from './world.ts';

export const VECTOR_DIR = fileURLToPath(new URL('../../vectors/transport/', import.meta.url));

export interface TranscriptLine {
  readonly who: 'C' | 'S';
  /** ':' = a line (CRLF added), '|' = raw escaped octets. */
  readonly form: ':' | '|';
  readonly text: string;
}

export interface Transcript {
  readonly name: string;
  readonly text: string;
  readonly directives: Directives;
  readonly lines: readonly TranscriptLine[];
}

/** `\r` `\n` `\t` `\\` `\xHH` and `\(N*c)` = N copies of character c. */
export function unescape(s: string): Uint8Array {
  const out: number[] = [];
  const enc = new TextEncoder();
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch !== '\\') {
      const cp = s.codePointAt(i)!;
      const str = String.fromCodePoint(cp);
      out.push(...enc.encode(str));
      i += str.length - 1;
      continue;
    }
    const e = s[++i];
    if (e === 'r') out.push(13);
    else if (e === 'n') out.push(10);
    else if (e === 't') out.push(9);
    else if (e === '\\') out.push(92);
    else if (e === 'x') {
      out.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (e === '(') {
      const m = /^\((\d+)\*(.)\)/u.exec(s.slice(i));
      if (m === null) throw new Error(`bad repeat escape in ${s}`);
      const unit = enc.encode(m[2]!);
      for (let k = 0; k < Number(m[1]); k++) out.push(...unit);
      i += m[0].length - 1;
    } else throw new Error(`bad escape \\${e} in ${s}`);
  }
  return new Uint8Array(out);
}

/** Inverse of unescape for display (no repeats): printable UTF-8 stays, the rest escaped. */
export function escape(bytes: Uint8Array): string {
  let out = '';
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  const roundtrips =
    new TextEncoder().encode(text).length === bytes.length && !text.includes('\ufffd');
  if (!roundtrips) {
    for (const b of bytes)
      out +=
        b >= 0x20 && b < 0x7f && b !== 0x5c
          ? String.fromCharCode(b)
          : `\\x${b.toString(16).padStart(2, '0')}`;
    return out;
  }
  for (const ch of text) {
    if (ch === '\r') out += '\\r';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\\') out += '\\\\';
    else if (ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f)
      out += `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out;
}

export function parseTranscript(name: string, text: string): Transcript {
  const directives: Record<string, string[]> = {};
  const lines: TranscriptLine[] = [];
  for (const raw of text.split('\n')) {
    if (raw === '' || raw.startsWith('#')) continue;
    if (raw.startsWith('@')) {
      const sp = raw.indexOf(' ');
      const key = raw.slice(1, sp < 0 ? undefined : sp);
      (directives[key] ??= []).push(sp < 0 ? '' : raw.slice(sp + 1));
      continue;
    }
    const m = /^([CS])([:|]) (.*)$/u.exec(raw);
    if (m === null) throw new Error(`${name}: bad transcript line ${JSON.stringify(raw)}`);
    lines.push({ who: m[1] as 'C' | 'S', form: m[2] as ':' | '|', text: m[3]! });
  }
  return { name, text, directives, lines };
}

export function lineBytes(l: TranscriptLine): Uint8Array {
  return l.form === ':' ? new TextEncoder().encode(`${l.text}\r\n`) : unescape(l.text);
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function loadTranscripts(): Transcript[] {
  return readdirSync(VECTOR_DIR)
    .filter((f) => f.endsWith('.txt'))
    .sort()
    .map((f) => parseTranscript(f, readFileSync(join(VECTOR_DIR, f), 'utf8')));
}

/**
 * One server session: the codec, the reducer and the world, wired the way a real host
 * wires them, minus sockets and timers. `feed` returns the octets the server sent.
 */
export class ServerRun {
  private readonly decoder = new WireDecoder('server');
  private readonly world: World;
  private tState: TransferServerState | undefined;
  private sState: SubmissionState | undefined;
  /** Everything the server decided, including host actions, for assertions. */
  readonly actions: (TransferServerAction | SubmissionAction)[] = [];
  closed = false;

  constructor(readonly directives: Directives) {
    this.world = new World(directives);
    const server = directives.server?.[0] ?? 'mx.example.net';
    const challenge = directives.challenge?.[0] ?? 'AAAAAAAAAAAAAAAAAAAAAA';
    const ip = directives.ip?.[0] ?? '192.0.2.10';
    if ((directives.service?.[0] ?? 'transfer') === 'transfer') {
      this.tState = initialTransferServer({
        serverName: server,
        requireCsv: directives['require-csv']?.[0] === 'yes',
        ...(directives.eager ? { eagerMax: Number(directives.eager[0]) } : {}),
        ...(directives['max-recipients']
          ? { limits: { maxRecipients: Number(directives['max-recipients'][0]) } }
          : {}),
      });
    } else {
      this.sState = initialSubmissionServer({ serverName: server });
    }
    this.out = [];
    this.dispatch({ type: 'connected', challenge, ip });
  }

  private out: Uint8Array[];

  /** Feeds client octets; returns the server octets they caused. */
  feed(bytes: Uint8Array): Uint8Array {
    this.out = [];
    if (!this.closed) {
      this.decoder.push(bytes);
      this.drain();
    }
    return concat(this.out);
  }

  /** The client closed its side. */
  end(): Uint8Array {
    this.out = [];
    if (!this.closed) {
      this.decoder.end();
      this.drain();
    }
    return concat(this.out);
  }

  /** Fires the session timer. */
  timeout(): Uint8Array {
    this.out = [];
    this.dispatch({ type: 'timeout' });
    return concat(this.out);
  }

  takeGreeting(): Uint8Array {
    const g = concat(this.out);
    this.out = [];
    return g;
  }

  private drain(): void {
    for (;;) {
      if (this.closed) return;
      const item: WireItem | typeof NEED_MORE | typeof END = this.decoder.next();
      if (item === NEED_MORE || item === END) return;
      this.dispatch({ type: 'wire', item });
      if (item.kind === 'error' && item.fatal) return;
    }
  }

  private dispatch(event: TransferServerEvent | SubmissionEvent): void {
    let actions: readonly (TransferServerAction | SubmissionAction)[];
    if (this.tState) {
      const step = transferServer(this.tState, event as TransferServerEvent);
      this.tState = step.state;
      actions = step.actions;
    } else {
      const step = submissionServer(this.sState!, event as SubmissionEvent);
      this.sState = step.state;
      actions = step.actions;
    }
    for (const a of actions) {
      this.actions.push(a);
      switch (a.type) {
        case 'reply':
          this.out.push(encodeReply(a.reply));
          break;
        case 'chunk':
          this.out.push(encodeChunk(a.bytes, a.last));
          break;
        case 'close':
          this.closed = true;
          break;
        case 'set-timer':
        case 'command':
          break;
        default: {
          const result = this.world.perform(a);
          if (result !== undefined) this.dispatch(result);
        }
      }
    }
  }
}
