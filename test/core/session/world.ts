/**
 * The deterministic test world every transcript runs against (documented in
 * test/vectors/transport/README.md): DNS, keys, a decider and a submission host, all
 * answering host actions synchronously. Behaviour is keyed on recipient local parts so a
 * transcript reads like a story.
 */
import { ed25519 } from '../../../src/core/sign/index.ts';
import { keyPairFromSeed, issueCertificate, fingerprint } from '../../../src/core/keys/index.ts';
import { decodeMessage } from '../../../src/core/frame/index.ts';
import { toBase64url } from '../../../src/core/sign/index.ts';
import {
  ViewChecker,
  viewSha256,
  type Announcement,
  type HeldView,
} from '../../../src/core/session/index.ts';
import type {
  CookieState,
  SubmissionAction,
  SubmissionEvent,
  TransferServerAction,
  TransferServerEvent,
  View,
} from '../../../src/core/session/index.ts';
import type { TxtAnswer } from '../../../src/core/keys/index.ts';

export type Directives = Readonly<Record<string, readonly string[]>>;

const seq = (from: number): Uint8Array => Uint8Array.from({ length: 32 }, (_, i) => from + i);

/** Domain keys: example.org = the §30.9 key (seed 00…1f); example.com seed 40…5f. */
export const KEYS = {
  'example.org': keyPairFromSeed(seq(0x00)),
  'example.com': keyPairFromSeed(seq(0x40)),
  /** Alice's user key (§40.9, seed 80…9f). */
  alice: keyPairFromSeed(seq(0x80)),
  /** A key nobody published (seed c0…df), for wrong-key proofs. */
  stranger: keyPairFromSeed(seq(0xc0)),
};

export const TXT: Readonly<Record<string, string>> = {
  '_nmtpclient.example.org': 'v=NMTPCSV1; ip=192.0.2.0/24,2001:db8::/32',
  '_nmtpclient.example.com': 'v=NMTPCSV1; ip=198.51.100.0/24',
};

interface Cookie {
  owner: string;
  rcpt: string;
  state: 'deferred' | 'want-full' | 'accepted' | 'rejected' | 'given-up';
  id?: string;
  /** What the DATA that created it announced, and the preview held (§60.10.6). */
  announced?: Announcement;
  held?: HeldView;
}

export class World {
  private readonly now: number;
  private readonly view: View;
  private readonly cookies = new Map<string, Cookie>();
  private nextId = 1;
  private nextCookie = 1;
  private data: Uint8Array[] = [];
  /** The view being received, checked as the host does (src/server/transfer-host.ts). */
  private checker: ViewChecker | undefined;
  private readonly submissions = new Map<string, { user: string; recipients: readonly string[] }>();

  constructor(private readonly d: Directives) {
    this.now = Number(d.now?.[0] ?? '1795000000');
    this.view = (d.view?.[0] ?? 'full') as View;
    // @cookie <cookie> <owner-domain> <rcpt> <state>
    for (const c of d.cookie ?? []) {
      const [name, owner, rcpt, state] = c.split(' ');
      this.cookies.set(name!, { owner: owner!, rcpt: rcpt!, state: state as Cookie['state'] });
    }
  }

  private local(rcpt: string): string {
    return rcpt.slice(0, rcpt.lastIndexOf('@'));
  }

  perform(
    a: TransferServerAction | SubmissionAction,
  ): TransferServerEvent | SubmissionEvent | undefined {
    switch (a.type) {
      case 'verify-proof': {
        const key = (KEYS as Record<string, { publicKey: Uint8Array }>)[a.domain];
        if (key === undefined || a.selector !== 's2026')
          return { type: 'proof-result', result: 'fail' };
        const ok = ed25519.verify(key.publicKey, a.input, a.signature);
        return { type: 'proof-result', result: ok ? 'pass' : 'fail' };
      }
      case 'lookup-txt': {
        const txt = TXT[a.name];
        const answer: TxtAnswer =
          txt === undefined ? { status: 'nxdomain' } : { status: 'ok', records: [[txt]] };
        return { type: 'txt-result', answer };
      }
      case 'reputation':
      case 'set-timer':
        return undefined;
      case 'decide-recipient': {
        const local = this.local(a.rcpt);
        if (local === 'nobody')
          return { type: 'recipient-decision', decision: { kind: 'reject', text: 'no such user' } };
        if (local === 'busy')
          return {
            type: 'recipient-decision',
            decision: { kind: 'unavailable', text: 'mailbox busy' },
          };
        // roaming: redirected, and taken here when the sender says the redirect failed
        // (§60.10.2). stubborn: a decider that redirects even then (the reducer answers 450).
        if ((local === 'roaming' && a.redirectFailed !== true) || local === 'stubborn') {
          return {
            type: 'recipient-decision',
            decision: {
              kind: 'redirect',
              host: 'roaming-laptop.example.net',
              port: 4025,
              fingerprint: fingerprint(KEYS.alice.publicKey),
            },
          };
        }
        return { type: 'recipient-decision', decision: { kind: 'accept' } };
      }
      case 'prove': {
        // This endpoint holds Alice's key for roaming@example.net (the redirect target of
        // transfer-redirect.txt), and no other user key (§60.10.8).
        if (a.rcpt !== 'roaming@example.net') return { type: 'proved', none: true };
        return {
          type: 'proved',
          key: KEYS.alice.publicKey,
          signature: ed25519.sign(KEYS.alice, a.input),
        };
      }
      case 'choose-view': {
        this.data = [];
        if (a.cookie === undefined)
          return { type: 'view-choice', choice: { kind: 'view', view: this.view } };
        const c = this.cookies.get(a.cookie);
        // "Foreign cookies answer exactly like unknown ones" (§60.10.6).
        if (c === undefined || c.owner !== a.domain)
          return { type: 'view-choice', choice: { kind: 'unknown-cookie' } };
        if (c.state !== 'want-full') return { type: 'view-choice', choice: { kind: 'not-wanted' } };
        const bound = {
          ...(c.announced === undefined ? {} : { announced: c.announced }),
          ...(c.held === undefined ? {} : { held: c.held }),
        };
        return { type: 'view-choice', choice: { kind: 'view', view: 'full', ...bound } };
      }
      case 'check-view':
        this.checker = new ViewChecker(a.view, a, a.held);
        return undefined;
      case 'store-chunk':
        this.data.push(a.bytes.slice());
        this.checker?.push(a.bytes);
        return undefined;
      case 'decide-message': {
        const verdict = this.checker?.finish();
        this.checker = undefined;
        if (verdict !== undefined && !verdict.ok)
          return { type: 'view-invalid', reason: verdict.reason };
        return { type: 'message-decision', answers: this.decideMessage(a) };
      }
      case 'cookie': {
        const c = this.cookies.get(a.cookie);
        if (c === undefined || c.owner !== a.domain)
          return { type: 'cookie-state', state: { kind: 'unknown' } };
        if (a.op === 'giveup') c.state = 'given-up';
        return { type: 'cookie-state', state: this.cookieState(c) };
      }
      case 'authenticate': {
        if (a.user !== 'alice@example.org') return { type: 'auth-result', ok: false };
        if (a.mechanism === 'PLAIN')
          return { type: 'auth-result', ok: a.password === 'correct horse' };
        const known = Buffer.from(a.publicKey).equals(Buffer.from(KEYS.alice.publicKey));
        return {
          type: 'auth-result',
          ok: known && ed25519.verify(a.publicKey, a.input, a.signature),
        };
      }
      case 'submit': {
        const id = `s-${this.nextId++}`;
        this.submissions.set(id, { user: a.user, recipients: a.recipients });
        return { type: 'submitted', id };
      }
      case 'sign': {
        // Stand-in for the host's signer: a real host adds Date, Message-Id and a
        // Signature field; the transcript only shows that signed octets come back in chunks.
        const body = concatAll(this.data);
        const trace = new TextEncoder().encode('NMTP/1\r\nTrace: signed-by=submit.example.org\r\n');
        const version = 'NMTP/1\r\n'.length;
        return { type: 'signed', bytes: concatAll([trace, body.subarray(version)]) };
      }
      case 'certify': {
        const certificate = issueCertificate(
          {
            domain: 'example.org',
            selector: 's2026',
            id: '0123456789abcdef0123456789abcdef',
            user: a.user,
            userKey: a.publicKey,
            notBefore: this.now,
            notAfter: this.now + (a.days ?? 30) * 86400,
          },
          KEYS['example.org'],
        );
        return { type: 'certified', certificate };
      }
      case 'submission-status': {
        const s = this.submissions.get(a.id);
        if (s === undefined || s.user !== a.user)
          return { type: 'status-result', id: a.id, recipients: undefined };
        return {
          type: 'status-result',
          id: a.id,
          recipients: s.recipients.map((rcpt) => {
            const local = this.local(rcpt);
            const state =
              local === 'carol' ? 'deferred' : local === 'dave' ? 'rejected' : 'accepted';
            return { rcpt, state };
          }),
        };
      }
      default:
        return undefined;
    }
  }

  private cookieState(c: Cookie): CookieState {
    const times = { min: 60, max: 3600, expires: this.now + 86400 };
    switch (c.state) {
      case 'deferred':
        return { kind: 'deferred', rcpt: c.rcpt, ...times };
      case 'want-full':
        return { kind: 'want-view', rcpt: c.rcpt, view: 'full' };
      case 'accepted':
        return { kind: 'accepted', rcpt: c.rcpt, id: c.id ?? 'r-0' };
      case 'rejected':
        return { kind: 'rejected', rcpt: c.rcpt, text: 'refused by the recipient' };
      case 'given-up':
        return { kind: 'given-up', rcpt: c.rcpt };
    }
  }

  private decideMessage(a: Extract<TransferServerAction, { type: 'decide-message' }>) {
    const bytes = concatAll(this.data);
    // "A receiver MUST check the content digest of a full view before accepting" (§60.10.4).
    let digestOk = true;
    if (a.view === 'full') {
      try {
        digestOk = toBase64url(decodeMessage(bytes).contentDigest) === a.digest;
      } catch {
        digestOk = false;
      }
    }
    if (a.cookie !== undefined) {
      const c = this.cookies.get(a.cookie)!;
      if (!digestOk)
        return [
          { kind: 'rejected' as const, rcpt: c.rcpt, enhanced: '5.6.0', text: 'digest mismatch' },
        ];
      c.state = 'accepted';
      c.id = `r-${this.nextId++}`;
      return [{ kind: 'accepted' as const, rcpt: c.rcpt, id: c.id }];
    }
    return a.recipients.map((rcpt) => {
      const local = this.local(rcpt);
      if (!digestOk)
        return { kind: 'rejected' as const, rcpt, enhanced: '5.6.0', text: 'digest mismatch' };
      // Anything less than the full view cannot be delivered yet: defer, and ask for more.
      if (local === 'carol' || a.view !== 'full') {
        const cookie = `ck-${this.nextCookie++}`;
        const { size, digest, signers } = a;
        this.cookies.set(cookie, {
          owner: a.domain,
          rcpt,
          state: 'want-full',
          announced: { size, digest, signers },
          ...(a.view === 'full' ? {} : { held: { view: a.view, sha256: viewSha256(bytes) } }),
        });
        return {
          kind: 'deferred' as const,
          rcpt,
          cookie,
          min: 60,
          max: 3600,
          expires: this.now + 86400,
        };
      }
      if (local === 'dave') return { kind: 'rejected' as const, rcpt, text: 'content refused' };
      return { kind: 'accepted' as const, rcpt, id: `r-${this.nextId++}` };
    });
  }
}

function concatAll(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
