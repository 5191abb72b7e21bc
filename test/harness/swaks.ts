/**
 * SMTP clients for the integration tests: Debian's swaks for ordinary transactions, and a
 * raw client over node:net for what swaks cannot send (smuggling variants, bare LF or CR,
 * SMTPUTF8, pipelined or malformed commands): it writes exactly the bytes it is given and
 * reads replies.
 */
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';

export interface SwaksOptions {
  /** Server as { host, port } (host default 127.0.0.1). */
  readonly server: { readonly host?: string; readonly port: number };
  readonly to: string | readonly string[];
  /** Envelope sender; "<>" for the null sender (default: swaks's user@host). */
  readonly from?: string;
  /**
   * The whole message (header and body), sent as given: bare LFs become CRLF and leading
   * dots are doubled here, swaks's own rewriting (\\n, %DATE% tokens) is turned off.
   * Without it, swaks sends its default message with `headers` and `body`.
   */
  readonly data?: string | Uint8Array;
  /** Header fields set in swaks's default message ("Subject: x"). */
  readonly headers?: readonly string[];
  /** Body of swaks's default message. */
  readonly body?: string;
  readonly ehlo?: string;
  /** ESMTP (default), SMTP or LMTP. */
  readonly protocol?: 'SMTP' | 'ESMTP' | 'LMTP';
  /** Stop after this step (CONNECT, FIRST-HELO, MAIL, RCPT, …): swaks --quit-after. */
  readonly quitAfter?: string;
  /** Further swaks arguments, passed as they are. */
  readonly args?: readonly string[];
  /** swaks's per-command timeout in seconds (default 30). */
  readonly timeoutSeconds?: number;
}

export interface SwaksResult {
  /** swaks's exit code: 0 delivered; 23 MAIL, 24 no RCPT, 25 DATA, 26 after DATA refused… */
  readonly code: number;
  /** The dialogue as swaks prints it ("<-  250 …", " -> RCPT TO:…", "<** 550 …"). */
  readonly transcript: string;
  readonly stderr: string;
}

/** Runs swaks once; a refusal is a result (its exit code), not an exception. */
export function swaks(o: SwaksOptions): Promise<SwaksResult> {
  const to = typeof o.to === 'string' ? o.to : o.to.join(',');
  const args = [
    '--server',
    o.server.host ?? '127.0.0.1',
    '--port',
    String(o.server.port),
    '--to',
    to,
    '--timeout',
    String(o.timeoutSeconds ?? 30),
  ];
  if (o.from !== undefined) args.push('--from', o.from);
  if (o.protocol !== undefined) args.push('--protocol', o.protocol);
  if (o.ehlo !== undefined) args.push('--ehlo', o.ehlo);
  if (o.body !== undefined) args.push('--body', o.body);
  for (const h of o.headers ?? []) args.push('--header', h);
  if (o.quitAfter !== undefined) args.push('--quit-after', o.quitAfter);
  let stdin: Buffer = Buffer.alloc(0);
  if (o.data !== undefined) {
    if (o.headers !== undefined || o.body !== undefined) {
      throw new Error('swaks harness: give data, or headers and body, not both');
    }
    args.push('--data', '-', '--no-data-fixup');
    stdin = dataForSwaks(o.data);
  }
  args.push(...(o.args ?? []));
  return new Promise((resolve, reject) => {
    const child = spawn('swaks', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.once('error', reject);
    child.once('close', (code, signal) =>
      resolve({
        code: code ?? (signal === null ? -1 : 128),
        transcript: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
    child.stdin.end(stdin);
  });
}

/**
 * What swaks sends after DATA when it does no fixup itself: CRLF line ends, leading dots
 * doubled, and the final "." (swaks adds the CRLF after it).
 */
function dataForSwaks(data: string | Uint8Array): Buffer {
  // latin1 maps bytes to code points one to one, so any 8-bit or UTF-8 content survives.
  let text =
    typeof data === 'string'
      ? Buffer.from(data, 'utf8').toString('latin1')
      : Buffer.from(data).toString('latin1');
  text = text.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..');
  if (!text.endsWith('\r\n')) text += '\r\n';
  return Buffer.from(`${text}.`, 'latin1');
}

export interface SmtpReply {
  readonly code: number;
  /** The text of each line, after the code and separator. */
  readonly lines: readonly string[];
  /** The reply as received, line ends included. */
  readonly raw: string;
}

/**
 * A raw SMTP/LMTP client: `send` writes exactly the given bytes, `reply` reads the next
 * reply (multi-line replies joined), `command` does both for one CRLF-terminated line.
 */
export class RawSmtp {
  readonly #socket: Socket;
  #buffer = Buffer.alloc(0);
  #ended = false;
  #wake: (() => void) | undefined;
  #greeting: SmtpReply = { code: 0, lines: [], raw: '' };

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (d: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, d]);
      this.#wake?.();
    });
    const end = (): void => {
      this.#ended = true;
      this.#wake?.();
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', end);
  }

  /** Connects and reads the greeting. */
  static async connect(port: number, host = '127.0.0.1'): Promise<RawSmtp> {
    const socket = connect({ host, port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const c = new RawSmtp(socket);
    c.#greeting = await c.reply();
    return c;
  }

  get greeting(): SmtpReply {
    return this.#greeting;
  }

  /** Writes the bytes as they are (no CRLF added, no dot-stuffing). */
  send(bytes: string | Uint8Array): Promise<void> {
    return new Promise((resolve, reject) =>
      this.#socket.write(bytes, (e) => (e ? reject(e) : resolve())),
    );
  }

  /** Sends one command line (CRLF added) and reads its reply. */
  async command(line: string): Promise<SmtpReply> {
    await this.send(`${line}\r\n`);
    return this.reply();
  }

  /** Reads the next complete reply; rejects if the server closes first or after timeoutMs. */
  async reply(timeoutMs = 15_000): Promise<SmtpReply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = this.#takeReply();
      if (r !== undefined) return r;
      if (this.#ended) {
        throw new Error(`connection closed before a reply (${JSON.stringify(this.#rest())})`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  /** True once the server has closed the connection. */
  get closed(): boolean {
    return this.#ended;
  }

  /** Sends QUIT (when still open) and closes. */
  async quit(): Promise<void> {
    if (!this.#ended) {
      await this.command('QUIT').catch(() => undefined);
    }
    this.close();
  }

  close(): void {
    this.#socket.destroy();
  }

  #rest(): string {
    return this.#buffer.toString('utf8');
  }

  // A reply ends with a line "NNN" or "NNN text"; "NNN-text" lines continue it.
  #takeReply(): SmtpReply | undefined {
    let pos = 0;
    const lines: string[] = [];
    for (;;) {
      const nl = this.#buffer.indexOf(0x0a, pos);
      if (nl < 0) return undefined;
      const line = this.#buffer.subarray(pos, nl).toString('utf8').replace(/\r$/, '');
      pos = nl + 1;
      const m = /^([0-9]{3})([ -]?)(.*)$/.exec(line);
      if (m === null) throw new Error(`not an SMTP reply line: ${JSON.stringify(line)}`);
      lines.push(m[3]!);
      if (m[2] !== '-') {
        const raw = this.#buffer.subarray(0, pos).toString('utf8');
        this.#buffer = this.#buffer.subarray(pos);
        return { code: Number(m[1]), lines, raw };
      }
    }
  }
}
