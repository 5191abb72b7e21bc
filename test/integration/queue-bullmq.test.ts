/**
 * The queue port's contract (test/queue/contract.ts) for the BullMQ backend on a real,
 * private Redis (test/harness/redis.ts: AOF with appendfsync always): a key prefix per
 * test; a restart opens a new BullmqQueue over the same prefix; a crash abandons the old
 * one as a killed process would (connections dropped, its locks left to expire — 2 s
 * here, so that the next backend recovers the job within the contract's patience).
 */
import { after, before } from 'node:test';
import { BullmqQueue } from '../../adapters/bullmq/queue.ts';
import { queueContract, type ContractOptions } from '../queue/contract.ts';
import { startRedis, type RedisServer } from '../harness/redis.ts';

let redis: RedisServer | undefined;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});

const make = ({ dirOrPrefix, ...o }: ContractOptions): Promise<BullmqQueue> =>
  BullmqQueue.open({ ...o, redis: redis!.url, prefix: dirOrPrefix, lockMs: 2000 });

queueContract('bullmq', make, make, {
  crash: (b) => (b as BullmqQueue).abandon(),
});
