/**
 * The submission server's user store: one JSON file naming each user (canonical address,
 * §20.6.1) with a scrypt password hash, the public keys registered for AUTH KEY, and the
 * keys the domain has certified for the user (CERTIFY, §60.11.4):
 *
 *     { "users": { "alice@example.org": {
 *         "password": "scrypt$16384$8$1$<salt b64url>$<hash b64url>",
 *         "keys": ["<b64url public key>"],
 *         "certified": [{ "key": "<b64url>", "id": "<32 hex>", "notAfter": 1798761600 }] } } }
 *
 * The file is read on every check (so `nmtp users add` from another process is seen at
 * once, as the cookie store does) and rewritten durably (temp, fsync, rename). Writes from
 * this process are serialised; two processes writing at the same instant may lose one
 * update (the last rename wins), which an administrator's `users add` can simply repeat.
 */
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { NmtpError } from '../core/errors/index.ts';
import { tryParseAddress } from '../core/address/index.ts';
import { fromBase64url, toBase64url } from '../core/sign/index.ts';
import { writeDurable } from './durable.ts';

export interface CertifiedKey {
  readonly key: string;
  readonly id: string;
  /** Unix seconds: the certificate's na=. */
  readonly notAfter: number;
}

export interface UserRecord {
  readonly password?: string;
  readonly keys?: readonly string[];
  readonly certified?: readonly CertifiedKey[];
}

export interface UsersFile {
  readonly users: Readonly<Record<string, UserRecord>>;
}

/** scrypt cost parameters (RFC 7914): N=2^14, r=8, p=1 uses 16 MiB and ~50 ms per check. */
export interface ScryptCost {
  readonly N: number;
  readonly r: number;
  readonly p: number;
}
export const DEFAULT_SCRYPT: ScryptCost = { N: 16384, r: 8, p: 1 };
const KEYLEN = 32;
const SALT = 16;

function scrypt(password: string, salt: Uint8Array, c: ScryptCost): Promise<Buffer> {
  const opts: ScryptOptions = { N: c.N, r: c.r, p: c.p, maxmem: 256 * c.N * c.r + (1 << 20) };
  return new Promise((resolve, reject) =>
    scryptCb(password.normalize('NFC'), salt, KEYLEN, opts, (e, k) => (e ? reject(e) : resolve(k))),
  );
}

/** `scrypt$N$r$p$salt$hash`, with a fresh 16-octet salt for every user. */
export async function hashPassword(
  password: string,
  cost: ScryptCost = DEFAULT_SCRYPT,
  salt: Uint8Array = randomBytes(SALT),
): Promise<string> {
  const hash = await scrypt(password, salt, cost);
  return `scrypt$${cost.N}$${cost.r}$${cost.p}$${toBase64url(salt)}$${toBase64url(hash)}`;
}

const HASH_RE = /^scrypt\$(\d{1,7})\$(\d{1,2})\$(\d{1,2})\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/;
// A stored hash that cannot be parsed still costs one default scrypt, so a broken entry and
// an unknown user take as long as a wrong password.
const DUMMY_SALT = new Uint8Array(SALT);

/** Compares in constant time; false for a malformed stored hash. */
export async function verifyPassword(
  password: string,
  stored: string | undefined,
): Promise<boolean> {
  const m = stored === undefined ? null : HASH_RE.exec(stored);
  const cost = m === null ? DEFAULT_SCRYPT : { N: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  const salt = m === null ? DUMMY_SALT : fromBase64url(m[4]!);
  const want = m === null ? undefined : fromBase64url(m[5]!, KEYLEN);
  // Costs outside sane bounds are refused rather than computed (a file edited by hand).
  // scrypt needs 128·N·r octets: at most 256 MiB here.
  const sane =
    cost.N >= 2 &&
    (cost.N & (cost.N - 1)) === 0 &&
    cost.r >= 1 &&
    cost.N * cost.r <= 1 << 21 &&
    cost.p >= 1 &&
    cost.p <= 16;
  const got = await scrypt(password, salt ?? DUMMY_SALT, sane ? cost : DEFAULT_SCRYPT);
  if (want === undefined || salt === undefined || !sane) return false;
  return timingSafeEqual(got, want);
}

/** The canonical form of a user address (§20.6.1), or undefined when it is not one. */
export function canonicalUser(user: string): string | undefined {
  const p = tryParseAddress(user);
  return p.ok ? p.address.canonical : undefined;
}

export class UserStore {
  private writing: Promise<unknown> = Promise.resolve();

  constructor(readonly file: string) {}

  async read(): Promise<UsersFile> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return { users: {} };
      throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', `users file: ${(e as Error).message}`);
    }
    try {
      const parsed = JSON.parse(text) as Partial<UsersFile>;
      return { users: parsed.users ?? {} };
    } catch (e) {
      throw new NmtpError('NMTP_ERR_CONFIG', `users file ${this.file}: ${(e as Error).message}`);
    }
  }

  async get(user: string): Promise<UserRecord | undefined> {
    const c = canonicalUser(user);
    if (c === undefined) return undefined;
    const { users } = await this.read();
    return Object.hasOwn(users, c) ? users[c] : undefined;
  }

  /** PLAIN: is this the user's password? Unknown users cost the same as known ones. */
  async checkPassword(user: string, password: string): Promise<boolean> {
    const r = await this.get(user);
    return verifyPassword(password, r?.password);
  }

  /**
   * KEY: is `key` registered for the user, or certified by the domain and not past its
   * certificate's na= ("the server accepts if the key is one it knows for that user
   * (registered, or certified by its domain and unrevoked)", §60.11.2)? Revocation is the
   * caller's check (it needs DNS).
   */
  async findKey(
    user: string,
    key: Uint8Array,
    now: number,
  ): Promise<{ kind: 'registered' } | { kind: 'certified'; id: string } | undefined> {
    const r = await this.get(user);
    const k = toBase64url(key);
    if (r?.keys?.includes(k) === true) return { kind: 'registered' };
    const c = r?.certified?.find((x) => x.key === k && x.notAfter >= now);
    return c === undefined ? undefined : { kind: 'certified', id: c.id };
  }

  /** Changes one user's record durably (read, modify, write; serialised in this process). */
  update(user: string, f: (r: UserRecord | undefined) => UserRecord): Promise<UserRecord> {
    const c = canonicalUser(user);
    if (c === undefined) {
      return Promise.reject(new NmtpError('NMTP_ERR_INVALID_ARGUMENT', `not an address: ${user}`));
    }
    const run = async (): Promise<UserRecord> => {
      const file = await this.read();
      const next = f(Object.hasOwn(file.users, c) ? file.users[c] : undefined);
      const users = { ...file.users, [c]: next };
      await writeDurable(this.file, `${JSON.stringify({ users }, null, 1)}\n`);
      return next;
    };
    const p = this.writing.then(run, run);
    this.writing = p.catch(() => undefined);
    return p;
  }

  /** Adds the user, or sets a new password for an existing one. */
  async setPassword(user: string, password: string, cost?: ScryptCost): Promise<void> {
    const hash = await hashPassword(password, cost);
    await this.update(user, (r) => ({ ...r, password: hash }));
  }

  async addKey(user: string, key: Uint8Array): Promise<void> {
    const k = toBase64url(key);
    await this.update(user, (r) => ({
      ...r,
      keys: r?.keys?.includes(k) === true ? r.keys : [...(r?.keys ?? []), k],
    }));
  }

  /** Records a certificate issued by CERTIFY, so AUTH KEY accepts the key until its na=. */
  async addCertified(user: string, c: CertifiedKey): Promise<void> {
    await this.update(user, (r) => ({ ...r, certified: [...(r?.certified ?? []), c] }));
  }
}
