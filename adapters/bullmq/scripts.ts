/**
 * The BullMQ backend's Redis scripts. Each runs atomically, and Redis writes its effects to
 * the AOF as one MULTI/EXEC block, which a restart replays whole or not at all (a block cut
 * short by a crash is dropped with `aof-load-truncated`): an entry is never half added,
 * half committed or half deleted.
 */
import type { Redis } from 'ioredis';

type Arg = string | number | Buffer;
export type Script = (keys: readonly string[], args: readonly Arg[]) => Promise<unknown>;

const LUA = {
  /**
   * KEYS msg state ids seq unobserved; ARGV id bytes json → 1, or 0 for a duplicate id.
   * The new entry is to be observed (by whichever worker works on it first).
   */
  add: `
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[4]), ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
return 1`,
  /**
   * KEYS tmp msg state ids seq unobserved; ARGV id json size → 1; 0 for a duplicate id (tmp
   * dropped); -1 when tmp is not the whole message (expired, or the file changed while read).
   */
  adopt: `
if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('DEL', KEYS[1])
  return 0
end
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('STRLEN', KEYS[1]) ~= tonumber(ARGV[3]) then
  redis.call('DEL', KEYS[1])
  return -1
end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('PERSIST', KEYS[2])
redis.call('SET', KEYS[3], ARGV[2])
redis.call('ZADD', KEYS[4], redis.call('INCR', KEYS[5]), ARGV[1])
redis.call('SADD', KEYS[6], ARGV[1])
return 1`,
  /**
   * KEYS state lock msg unobserved again; ARGV token json ttl id seen keep → 1 stored (and
   * the retries counted in `seen` consumed); 0 the entry was deleted meanwhile; -1 the lock
   * is not ours; a string: retries came that `seen` does not count (their count; nothing
   * written: merge them in and commit again). With a ttl the entry is finished: its state
   * expires after `keepDone`, and its message goes — or, with `keep` = '1' (an observer
   * will see the final state first: a DSN may return the message), expires with it and
   * goes when `observed` is told the entry is finished.
   */
  commit: `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local again = redis.call('GET', KEYS[5])
if again and again ~= ARGV[5] then return again end
if again then redis.call('DEL', KEYS[5]) end
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  if ARGV[6] == '1' then redis.call('EXPIRE', KEYS[3], ARGV[3]) else redis.call('DEL', KEYS[3]) end
else
  redis.call('SET', KEYS[1], ARGV[2])
end
redis.call('SADD', KEYS[4], ARGV[4])
return 1`,
  /**
   * KEYS state lock unobserved msg; ARGV token json-or-'' id finished → as commit; keeps
   * the expiry; with `finished` = '1' the message goes (the observer has seen the end).
   */
  observed: `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[3], ARGV[3])
  return 0
end
if ARGV[2] ~= '' then redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL') end
if ARGV[4] == '1' then redis.call('DEL', KEYS[4]) end
redis.call('SREM', KEYS[3], ARGV[3])
return 1`,
  /** KEYS lock; ARGV token ms → 1 renewed, 0 not ours any more. */
  renew: `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`,
  /**
   * KEYS lock again; ARGV token → 1 unlocked; 0 not ours; a string: retries came since the
   * last commit (still locked: the holder applies them, commits, and unlocks again).
   */
  unlock: `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local again = redis.call('GET', KEYS[2])
if again then return again end
redis.call('DEL', KEYS[1])
return 1`,
  /** KEYS lock again; ARGV token seen → 1 the retries counted consumed; -1 not ours; a string: more came. */
  consume: `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local again = redis.call('GET', KEYS[2])
if again and again ~= ARGV[2] then return again end
redis.call('DEL', KEYS[2])
return 1`,
  /** KEYS lock again → 1 counted for the lock's holder; 0 nobody holds the lock. */
  mark: `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('INCR', KEYS[2])
return 1`,
  /** KEYS ids state…; ARGV id… (state i+1 is id i's) → drops from ids the ids with no state. */
  forget: `
for i, id in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then redis.call('ZREM', KEYS[1], id) end
end
return 1`,
  /** KEYS state msg ids unobserved again; ARGV id → 1 if the entry existed. */
  remove: `
local n = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2], KEYS[5])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
return n`,
} as const;

export type Scripts = Record<keyof typeof LUA, Script>;

/** Registers the scripts on `redis` (EVALSHA, loaded on first use) and returns them. */
export function defineScripts(redis: Redis): Scripts {
  const out: Partial<Scripts> = {};
  for (const [name, lua] of Object.entries(LUA) as [keyof typeof LUA, string][]) {
    const command = `nmtpQueue_${name}`;
    redis.defineCommand(command, { lua });
    const f = (redis as unknown as Record<string, (...a: Arg[]) => Promise<unknown>>)[command]!;
    // numberOfKeys is not fixed per script call site here: pass it first, as EVAL does.
    out[name] = (keys, args) => f.call(redis, keys.length, ...keys, ...args);
  }
  return out as Scripts;
}
