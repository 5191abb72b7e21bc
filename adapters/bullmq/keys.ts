/**
 * Where the BullMQ backend keeps an entry in Redis (the layout is described in
 * adapters/bullmq/queue.ts), and how a BullMQ job is named after the entry it works on.
 */

/** The BullMQ queue's name, under the same prefix as the entries ("<prefix>:work:…"). */
export const WORK_QUEUE = 'work';

export interface Keys {
  /** The message bytes (a string), while some recipient is not final. */
  msg(id: string): string;
  /** The entry's state (QueuedSubmission as JSON); expires `keepDone` after the last recipient. */
  state(id: string): string;
  /** The per-entry lock: a random token, with an expiry renewed while its holder works. */
  lock(id: string): string;
  /** Set when retry() found the entry locked: the holder makes it due before unlocking. */
  again(id: string): string;
  /** A message being streamed in by addFile(), renamed to msg(id) with the state. */
  tmp(id: string, nonce: string): string;
  /** Sorted set of every entry's id, scored by `seq` at creation: the order of list(). */
  readonly ids: string;
  /** Counter giving each new entry its place in `ids`. */
  readonly seq: string;
  /** Set of ids whose last change the observer has not finished with (recovery). */
  readonly unobserved: string;
}

export function keysFor(prefix: string): Keys {
  if (prefix === '' || /[\s{}]/.test(prefix)) {
    throw new Error(`bullmq queue: invalid key prefix ${JSON.stringify(prefix)}`);
  }
  return {
    msg: (id) => `${prefix}:msg:${id}`,
    state: (id) => `${prefix}:state:${id}`,
    lock: (id) => `${prefix}:lock:${id}`,
    again: (id) => `${prefix}:again:${id}`,
    tmp: (id, nonce) => `${prefix}:tmp:${id}:${nonce}`,
    ids: `${prefix}:ids`,
    seq: `${prefix}:seq`,
    unobserved: `${prefix}:unobserved`,
  };
}

/**
 * "work on entry <id> at <due>": the same entry due at the same second is one job, so
 * that two processes scheduling it (start-up recovery, a sweep, a job's successor) add it
 * once. An entry id has no '.' (§60.4), so the parts stay apart, and a BullMQ id may
 * neither contain ':' nor be an integer: "<id>.<due>" is neither. A `nonce` makes a job
 * that must not be taken for one already running (a retry's wake-up: BullMQ ignores an
 * add whose id a running job has, and then removes that job when it completes).
 */
export function jobIdFor(id: string, due: number, nonce?: string): string {
  return nonce === undefined ? `${id}.${due}` : `${id}.${due}.${nonce}`;
}
