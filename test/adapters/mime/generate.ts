/**
 * A deterministic generator of diverse legacy (RFC 5322/MIME) messages for the Python
 * oracle (generated-oracle.test.ts). Every message comes from a seeded PRNG, so a failure
 * names a message that the same seed builds again.
 *
 * Each message carries *tags*: `aspect|class` for the places where the generator knowingly
 * wrote something that the spec reads differently from Python (the test's INTENDED_CLASSES
 * decide which classes excuse a difference). The aspect is the one compareWithOracle reports
 * (`subject`, `from`, `leaf<i>`, `leaf-count`).
 */
import iconv from 'iconv-lite';
import { prng } from '../../support/prng.ts';

interface CharsetCase {
  /** Labels as writers spell them (odd case, aliases). */
  readonly labels: readonly string[];
  /** Texts every one of these charsets holds (and that every decoder reads alike). */
  readonly texts: readonly string[];
  /** Encoder: iconv-lite name, or fixed encodings of `texts` (iconv-lite has no ISO-2022-JP). */
  readonly encode: string | ((text: string) => Buffer);
  /** Multi-octet: splitting the octets anywhere may cut a character. */
  readonly multi?: boolean;
}

// ISO-2022-JP octets of the two texts below, as Python's codec writes them.
const ISO2022JP: Record<string, string> = {
  '日本語のメールです。テスト': '1b2442467c4b5c386c244e2561213c256b2447243921232546253925481b2842',
  こんにちは世界: '1b244224332473244b2441244f402433261b2842',
};

export const CHARSETS: readonly CharsetCase[] = [
  {
    labels: ['iso-8859-1', 'ISO-8859-1', 'latin1', 'Latin1', 'ISO_8859-1', 'l1'],
    texts: ['Grüße aus Köln', 'café à la crème, señor', 'Ærø ½ × ÷ ©'],
    encode: 'latin1',
  },
  {
    labels: ['iso-8859-2', 'ISO-8859-2', 'latin2', 'Iso-8859-2'],
    texts: ['Zażółć gęślą jaźń', 'Příliš žluťoučký kůň'],
    encode: 'iso-8859-2',
  },
  {
    labels: ['iso-8859-5', 'ISO-8859-5', 'cyrillic'],
    texts: ['Съешь же ещё этих мягких булок', 'Привет мир'],
    encode: 'iso-8859-5',
  },
  {
    labels: ['iso-8859-7', 'ISO-8859-7', 'greek'],
    texts: ['Ξεσκεπάζω την ψυχοφθόρα βδελυγμία', 'Καλημέρα κόσμε'],
    encode: 'iso-8859-7',
  },
  {
    labels: ['iso-8859-15', 'ISO-8859-15', 'latin9', 'Latin-9'],
    texts: ['Prix: 5 €, œuvre', 'Šárka Žofie Ÿves'],
    encode: 'iso-8859-15',
  },
  {
    labels: ['windows-1250', 'Windows-1250', 'cp1250'],
    texts: ['Příliš „žluťoučký“ kůň', 'Łódź – Kraków'],
    encode: 'windows-1250',
  },
  {
    labels: ['windows-1251', 'WINDOWS-1251', 'cp1251'],
    texts: ['Привет, мир — «ёлка»', 'Съешь же ещё'],
    encode: 'windows-1251',
  },
  {
    labels: ['windows-1252', 'Windows-1252', 'cp1252', 'CP1252'],
    texts: ['“Smart quotes” – dash … €5', 'naïve café ™ Œuvre'],
    encode: 'windows-1252',
  },
  {
    labels: ['koi8-r', 'KOI8-R', 'Koi8-R'],
    texts: ['Съешь же ещё этих булок', 'Привет мир'],
    encode: 'koi8-r',
  },
  {
    labels: ['utf-8', 'UTF-8', 'utf8', 'Utf-8', 'UTF8'],
    texts: ['Grüße 中文 😀 Ελληνικά', 'Ünïcödé ✓ — ok', '日本語 한국어 עברית'],
    encode: 'utf-8',
    multi: true,
  },
  {
    labels: ['gb2312', 'GB2312', 'gbk', 'GBK', 'cp936'],
    texts: ['中文邮件测试', '你好世界，欢迎'],
    encode: 'gbk',
    multi: true,
  },
  {
    labels: ['big5', 'Big5', 'BIG5'],
    texts: ['中文郵件測試', '你好世界，歡迎'],
    encode: 'big5',
    multi: true,
  },
  {
    labels: ['euc-kr', 'EUC-KR', 'ks_c_5601-1987'],
    texts: ['한국어 메일 시험', '안녕하세요 세계'],
    encode: 'euc-kr',
    multi: true,
  },
  {
    labels: ['shift_jis', 'Shift_JIS', 'sjis', 'SHIFT_JIS'],
    texts: ['日本語のメールです。テスト', 'こんにちは世界'],
    encode: 'shift_jis',
    multi: true,
  },
  {
    labels: ['euc-jp', 'EUC-JP'],
    texts: ['日本語のメールです。テスト', 'こんにちは世界'],
    encode: 'euc-jp',
    multi: true,
  },
  {
    labels: ['iso-2022-jp', 'ISO-2022-JP'],
    texts: ['日本語のメールです。テスト', 'こんにちは世界'],
    encode: (t) => Buffer.from(ISO2022JP[t]!, 'hex'),
    multi: true,
  },
];

/** Labels of CHARSETS that Python's codec registry does not know (see the test). */
const PYTHON_UNKNOWN = new Set(['Latin-9']);

export interface Generated {
  readonly bytes: Buffer;
  readonly tags: ReadonlySet<string>;
}

const WORDS = ['hello', 'world', 'meeting', 'report', 'status', 'q3', 'x'];
// In an address phrase a ":" would start a group (RFC 5322 §3.4): subjects only.
const SUBJECT_WORDS = [...WORDS, 'Re:', 'Fwd:'];
const ASCII_LINES = [
  'Hello there, this is a plain line.',
  'Second line with = sign and tab\there.',
  'A longer line of text that goes on and on to make the encoders wrap it somewhere, yes.',
  '',
  '-- ',
  'Dots. at. the. end.',
];

class Gen {
  readonly tags = new Set<string>();
  private leaf = 0;
  readonly eol: string;
  constructor(private readonly r: () => number) {
    this.eol = r() < 0.15 ? '\n' : '\r\n';
  }
  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  chance(p: number): boolean {
    return this.r() < p;
  }
  charset(aspect: string): { cs: CharsetCase; label: string; text: string } {
    const cs = this.pick(CHARSETS);
    const label = this.pick(cs.labels);
    if (PYTHON_UNKNOWN.has(label)) this.tags.add(`${aspect}|python-label`);
    return { cs, label, text: this.pick(cs.texts) };
  }
  enc(cs: CharsetCase, text: string): Buffer {
    return typeof cs.encode === 'string' ? iconv.encode(text, cs.encode) : cs.encode(text);
  }

  // ---- RFC 2047 encoded-words

  qWord(label: string, octets: Buffer): string {
    const lower = this.chance(0.3);
    let s = '';
    for (const b of octets) {
      if (b === 0x20) s += '_';
      else if ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a))
        s += String.fromCharCode(b);
      else {
        const h = b.toString(16).padStart(2, '0');
        s += `=${lower ? h : h.toUpperCase()}`;
      }
    }
    return `=?${label}?${this.chance(0.5) ? 'Q' : 'q'}?${s}?=`;
  }
  bWord(label: string, octets: Buffer): string {
    return `=?${label}?${this.chance(0.8) ? 'B' : 'b'}?${octets.toString('base64')}?=`;
  }
  word(label: string, octets: Buffer): string {
    return this.chance(0.5) ? this.qWord(label, octets) : this.bWord(label, octets);
  }

  /** Encoded-words for a text: one word, several (split anywhere for multi-octet charsets). */
  words(aspect: string): string {
    const { cs, label, text } = this.charset(aspect);
    const octets = this.enc(cs, text);
    const sep = (): string => this.pick([' ', '  ', `${this.eol} `, `${this.eol}\t`, '\t']);
    const n = this.pick([1, 1, 2, 3]);
    if (n === 1 || octets.length < 4) return this.word(label, octets);
    // Cut points: anywhere in the octets; at a character boundary when the charset is
    // stateful (a cut ISO-2022-JP escape sequence is no text in any reader).
    const cuts: number[] = [];
    if (cs.multi === true && typeof cs.encode !== 'string') {
      // Whole texts only for ISO-2022-JP: each word encodes a complete, reset sequence.
      const t2 = this.pick(cs.texts);
      if (aspect === 'from') this.tags.add('from|adjacent-words');
      return this.word(label, octets) + sep() + this.word(label, this.enc(cs, t2));
    }
    for (let i = 1; i < n; i++) cuts.push(1 + this.int(octets.length - 1));
    cuts.sort((a, b) => a - b);
    const parts: Buffer[] = [];
    let at = 0;
    for (const c of [...cuts, octets.length]) {
      if (c > at) parts.push(octets.subarray(at, c));
      at = Math.max(at, c);
    }
    if (parts.length > 1) {
      if (cs.multi === true && !splitsClean(cs, octets, cuts))
        this.tags.add(`${aspect}|split-char`);
      if (aspect === 'from') this.tags.add('from|adjacent-words');
    }
    return parts.map((p) => this.word(label, p)).join(sep());
  }

  /** A phrase: ASCII words, encoded-words, both, or an invalid word. */
  headerText(aspect: string): string {
    const ASCII_WORDS = aspect === 'from' ? WORDS : SUBJECT_WORDS;
    const kind = this.int(8);
    if (kind === 0) return this.pick(ASCII_WORDS) + ' ' + this.pick(ASCII_WORDS);
    if (kind === 1) return `${this.pick(ASCII_WORDS)} ${this.words(aspect)}`;
    if (kind === 2) {
      // Mixed charsets, adjacent.
      const a = this.words(aspect);
      const b = this.words(aspect);
      if (aspect === 'from') this.tags.add('from|adjacent-words');
      return `${a} ${b}`;
    }
    if (kind === 3) {
      const bad = this.pick([
        '=?x-unknown-cs?Q?caf=E9?=',
        '=?utf-8?X?abc?=',
        '=?utf-8?Q?unterminated',
        '=?utf-8?B?w6k?=',
        '=?iso-8859-1?Q?a=3?=',
        '=??Q?empty?=',
        '=?utf-8?Q?=C3?=',
      ]);
      if (bad.startsWith('=?x-unknown')) this.tags.add(`${aspect}|unknown-charset`);
      if (bad === '=?utf-8?Q?=C3?=') this.tags.add(`${aspect}|invalid-octets`);
      if (bad.startsWith('=??')) this.tags.add(`${aspect}|empty-charset`);
      return `${this.pick(ASCII_WORDS)} ${bad} ${this.pick(ASCII_WORDS)}`;
    }
    if (kind === 4) return `${this.words(aspect)} ${this.pick(ASCII_WORDS)}`;
    return this.words(aspect);
  }

  fold(name: string, value: string): string {
    // Fold at some spaces (never inside an encoded-word: it holds no space).
    const line = `${name}: ${value}`;
    if (!this.chance(0.4)) return line + this.eol;
    // Only at a space that does not already start a continuation line (that would leave an
    // empty line, which ends the header block).
    const fold = (m: string): string =>
      this.chance(0.3) ? `${this.eol}${this.pick([' ', '\t'])}` : m;
    return line.replace(/(?<![\r\n]) (?=[^ \t\r\n])/g, fold) + this.eol;
  }

  fromField(): string {
    const mbox = (i: number): string => {
      const addr = `user${i}@example.com`;
      const k = this.int(6);
      if (k === 0) return addr;
      if (k === 1) return `"Doe, J. (${i})" <${addr}>`;
      if (k === 2) return `Plain Name <${addr}>`;
      if (k === 3) return `"${this.words('from')}" <${addr}>`;
      return `${this.headerText('from')} <${addr}>`;
    };
    const n = this.chance(0.15) ? 2 : 1;
    return this.fold('From', Array.from({ length: n }, (_, i) => mbox(i)).join(', '));
  }

  header(): string {
    let h = '';
    h += this.fromField();
    h += `To: rcpt@example.org${this.eol}`;
    if (this.chance(0.95)) {
      const subj = this.headerText('subject');
      h += this.fold(this.pick(['Subject', 'SUBJECT', 'subject']), subj);
    }
    h += `Date: Mon, 7 Dec 2026 21:00:00 +0000${this.eol}`;
    h += `Message-ID: <gen${this.int(1e6)}@example.com>${this.eol}`;
    return h;
  }

  // ---- bodies

  qp(octets: Buffer): string {
    const lower = this.chance(0.3);
    const width = this.pick([76, 76, 40, 17, 73, 998]);
    const hex = (b: number): string => {
      const h = b.toString(16).padStart(2, '0');
      return `=${lower ? h : h.toUpperCase()}`;
    };
    const out: string[] = [];
    let line = '';
    const push = (tok: string): void => {
      if (line.length + tok.length > width - 1) {
        out.push(`${line}=`);
        line = '';
      }
      line += tok;
    };
    for (let i = 0; i < octets.length; i++) {
      const b = octets[i]!;
      if (b === 0x0d && octets[i + 1] === 0x0a) {
        out.push(line);
        line = '';
        i++;
        continue;
      }
      if (b === 0x0a) {
        out.push(line);
        line = '';
        continue;
      }
      const next = octets[i + 1];
      const atEnd = next === undefined || next === 0x0d || next === 0x0a;
      if ((b === 0x20 || b === 0x09) && atEnd) push(hex(b));
      else if ((b >= 33 && b <= 126 && b !== 0x3d) || b === 0x20 || b === 0x09)
        push(String.fromCharCode(b));
      else push(hex(b));
    }
    out.push(line);
    // Whitespace a transport appended to encoded lines (RFC 2045 §6.7 (3)), after a soft
    // break's "=" too: the spec keeps it (§50.5.1), as Python does.
    const pad = this.chance(0.2);
    return out
      .map((l) => (pad && this.chance(0.3) ? `${l}${this.pick([' ', '\t', '  '])}` : l))
      .join(this.eol);
  }

  base64(octets: Buffer): string {
    const width = this.pick([76, 76, 64, 57, 4, 0]);
    const s = octets.toString('base64');
    if (width === 0) return s;
    const lines: string[] = [];
    for (let i = 0; i < s.length; i += width) lines.push(s.slice(i, i + width));
    return lines.join(this.eol);
  }

  /** Body octets under a CTE; returns the CTE header line ('' for none). */
  encodeBody(octets: Buffer, eightBit: boolean): { cte: string; body: string | Buffer } {
    const k = this.int(5);
    if (k === 0) return { cte: this.chance(0.5) ? 'Base64' : 'base64', body: this.base64(octets) };
    if (k === 1)
      return { cte: this.pick(['quoted-printable', 'Quoted-Printable']), body: this.qp(octets) };
    if (k === 2 && !eightBit) return { cte: '7bit', body: octets };
    if (k === 3) return { cte: '8bit', body: octets };
    return { cte: '', body: octets };
  }

  textLeaf(sub: string): Buffer {
    const idx = this.leaf++;
    const lines: string[] = [];
    const n = 1 + this.int(4);
    const mode = this.int(10);
    let ct = `text/${sub}`;
    let octets: Buffer;
    let eightBit = false;
    if (mode === 0) {
      // No charset, ASCII.
      for (let i = 0; i < n; i++) lines.push(this.pick(ASCII_LINES));
      octets = Buffer.from(lines.join(this.eol) + this.eol);
    } else if (mode === 1) {
      // No charset, but UTF-8 octets (what many writers send).
      for (let i = 0; i < n; i++) lines.push(this.pick(CHARSETS[9]!.texts));
      octets = Buffer.from(lines.join(this.eol) + this.eol);
      eightBit = true;
      this.tags.add(`leaf${idx}|utf8-undeclared`);
    } else {
      const { cs, label } = this.charset(`leaf${idx}`);
      for (let i = 0; i < n; i++)
        lines.push(this.chance(0.3) ? this.pick(ASCII_LINES) : this.pick(cs.texts));
      // Each line on its own (ISO-2022-JP returns to ASCII at the end of each).
      octets = Buffer.concat(
        lines.map((l) =>
          Buffer.concat([
            cs.texts.includes(l) ? this.enc(cs, l) : Buffer.from(l),
            Buffer.from(this.eol),
          ]),
        ),
      );
      eightBit = octets.some((b) => b >= 0x80);
      const q = this.chance(0.3) ? `"${label}"` : label;
      ct += this.chance(0.2) ? `;${this.eol}\tcharset=${q}` : `; charset=${q}`;
    }
    const { cte, body } = this.encodeBody(octets, eightBit);
    let h = '';
    if (!(mode === 0 && sub === 'plain' && this.chance(0.3))) h += `Content-Type: ${ct}${this.eol}`;
    if (cte !== '') h += `Content-Transfer-Encoding: ${cte}${this.eol}`;
    return Buffer.concat([
      Buffer.from(h + this.eol),
      typeof body === 'string' ? Buffer.from(body) : body,
    ]);
  }

  filenameParam(): string {
    const k = this.int(10);
    if (k === 6) {
      // RFC 2231 continuations in a random charset, split anywhere (§4.1: a character may
      // be split across segments only in the encoded octets, which are joined first).
      const { cs, label, text } = this.charset(`leaf${this.leaf - 1}`);
      if (typeof cs.encode !== 'string') return `; filename=plain.txt`;
      const pct = [...this.enc(cs, text)].map(
        (b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`,
      );
      const joined = pct.join('');
      const parts: string[] = [];
      let at = 0;
      let n = 0;
      while (at < joined.length) {
        const len = 3 * (1 + this.int(4));
        parts.push(`filename*${n}*=${n === 0 ? `${label}''` : ''}${joined.slice(at, at + len)}`);
        at += len;
        n++;
      }
      if (cs.multi === true && parts.length > 1)
        this.tags.add(`leaf${this.leaf - 1}|rfc2231-split`);
      return `;${this.eol} ${parts.join(`;${this.eol} `)}`;
    }
    if (k === 7) return `; filename*=utf-8''%e4%b8%ad%e6%96%87.txt`;
    if (k === 8) {
      const { cs, label, text } = this.charset(`leaf${this.leaf - 1}`);
      return `; filename="${this.word(label, this.enc(cs, text))}.txt"`;
    }
    if (k === 9) return `; filename*0="long name, ";${this.eol}\tfilename*1="part two.doc"`;
    if (k === 0) return `; filename=data.bin`;
    if (k === 1) return `; filename="report (final).pdf"`;
    if (k === 2) return `; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf`;
    if (k === 3)
      return `;${this.eol} filename*0*=iso-8859-1'fr'caf%E9;${this.eol} filename*1="-menu.txt"`;
    if (k === 4) return `; filename="${this.word('utf-8', Buffer.from('Grüße.txt'))}"`;
    return `; name*=utf-8'en'%E4%B8%AD.bin`;
  }

  binaryLeaf(): Buffer {
    this.leaf++;
    const n = this.int(300);
    const octets = Buffer.alloc(n);
    for (let i = 0; i < n; i++) octets[i] = this.int(256);
    const type = this.pick(['application/octet-stream', 'image/png', 'application/pdf']);
    const disp = this.chance(0.7)
      ? `Content-Disposition: attachment${this.filenameParam()}${this.eol}`
      : '';
    const h = `Content-Type: ${type}${this.chance(0.3) ? this.filenameParam() : ''}${this.eol}${disp}Content-Transfer-Encoding: base64${this.eol}`;
    return Buffer.from(h + this.eol + this.base64(octets) + this.eol);
  }

  boundary(): { param: string; value: string } {
    const k = this.int(7);
    const id = this.int(1e9).toString(36);
    if (k === 0) return { param: `"=_Part_${id}"`, value: `=_Part_${id}` };
    if (k === 1)
      return { param: `"odd '()+_,-./:?= chars ${id}"`, value: `odd '()+_,-./:?= chars ${id}` };
    if (k === 2) {
      const v = `${'x'.repeat(60)}${id}`.slice(0, 70);
      return { param: v, value: v };
    }
    if (k === 3) return { param: `"----${id}"`, value: `----${id}` };
    return { param: `b${id}`, value: `b${id}` };
  }

  multipart(depth: number): Buffer {
    const sub = this.pick(['mixed', 'alternative', 'related', 'mixed']);
    if (this.chance(0.05)) {
      // No boundary parameter, or delimiters of another boundary: a multipart without
      // any body part (spec §50.6.1).
      // Python keeps the line break that belongs to the enclosing delimiter (its parser
      // strips it only from parts whose type is not multipart).
      this.tags.add(`leaf${this.leaf++}|no-parts-crlf`);
      const bparam = this.chance(0.5) ? '' : '; boundary="declared"';
      return Buffer.from(
        `Content-Type: multipart/${sub}${bparam}${this.eol}${this.eol}preamble${this.eol}` +
          `--other${this.eol}${this.eol}text${this.eol}--other--${this.eol}`,
      );
    }
    const { param, value } = this.boundary();
    const rfc2231 = this.chance(0.08) && !param.startsWith('"');
    const bparam = rfc2231
      ? `boundary*0="${value.slice(0, 5)}";${this.eol} boundary*1="${value.slice(5)}"`
      : `boundary=${param}`;
    const h = `Content-Type: multipart/${sub};${this.chance(0.5) ? this.eol + '\t' : ' '}${bparam}${this.eol}`;
    const n = 1 + this.int(3);
    const chunks: Buffer[] = [Buffer.from(h + this.eol)];
    if (this.chance(0.4))
      chunks.push(Buffer.from(`This is a multi-part message in MIME format.${this.eol}`));
    for (let i = 0; i < n; i++) {
      const pad = this.chance(0.1) ? ' \t' : '';
      chunks.push(Buffer.from(`--${value}${pad}${this.eol}`));
      chunks.push(this.entity(depth + 1));
      chunks.push(Buffer.from(this.eol));
    }
    if (this.chance(0.9)) {
      chunks.push(Buffer.from(`--${value}--${this.eol}`));
      if (this.chance(0.3)) chunks.push(Buffer.from(`epilogue text${this.eol}`));
    }
    return Buffer.concat(chunks);
  }

  rfc822(depth: number): Buffer {
    const h = `Content-Type: message/rfc822${this.eol}${this.chance(0.5) ? `Content-Disposition: inline${this.eol}` : ''}${this.eol}`;
    // The inner message's own header (its subject and From are not compared: only leaves).
    const inner = `From: inner@example.net${this.eol}Subject: ${this.headerText('inner')}${this.eol}`;
    const body = this.entityWithHeader(depth + 1, inner);
    return Buffer.concat([Buffer.from(h), body]);
  }

  /** A body part: its header block (Content-*) and body. */
  entity(depth: number): Buffer {
    const k = this.int(10);
    if (depth < 3 && k < 3) return this.multipart(depth);
    if (depth < 3 && k === 3) return this.rfc822(depth);
    if (k === 4) return this.binaryLeaf();
    return this.textLeaf(this.pick(['plain', 'plain', 'html']));
  }

  /** A message: `header` and then the entity's fields, one block. */
  entityWithHeader(depth: number, header: string): Buffer {
    const e = this.entity(depth);
    return Buffer.concat([Buffer.from(`${header}MIME-Version: 1.0${this.eol}`), e]);
  }
}

/** True when every cut falls on a character boundary (decoding each piece gives the text). */
function splitsClean(cs: CharsetCase, octets: Buffer, cuts: number[]): boolean {
  if (typeof cs.encode !== 'string') return false;
  const whole = iconv.decode(octets, cs.encode);
  let joined = '';
  let at = 0;
  for (const c of [...cuts, octets.length]) {
    if (c <= at) continue;
    const piece = octets.subarray(at, c);
    const t = iconv.decode(piece, cs.encode);
    if (t.includes('\ufffd') || !Buffer.from(iconv.encode(t, cs.encode)).equals(piece))
      return false;
    joined += t;
    at = c;
  }
  return joined === whole;
}

/** Message number `i` of the series for `seed`. */
export function generate(seed: number, i: number): Generated {
  const g = new Gen(prng(seed * 1_000_003 + i));
  const header = g.header();
  const body = g.entityWithHeader(0, header);
  return { bytes: body, tags: g.tags };
}
