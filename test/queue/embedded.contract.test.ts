/**
 * The queue port's contract (test/queue/contract.ts) for the embedded backend: a queue
 * directory per test under one temporary root; a restart opens a new Queue over the same
 * directory; a crash abandons the old one (its delivery never returns, so it stores
 * nothing more) — as a killed process leaves its directory.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from '../../src/queue/index.ts';
import { queueContract, type ContractOptions } from './contract.ts';

const root = mkdtempSync(join(tmpdir(), 'nmtp-queue-contract-'));

const make = ({ dirOrPrefix, ...o }: ContractOptions): Promise<Queue> =>
  Queue.open({ ...o, dir: join(root, dirOrPrefix) });

// A killed process's kernel lock on the directory goes with it: abandon() lets go of it.
queueContract('embedded', make, make, {
  crash: async (b) => {
    (b as Queue).abandon();
  },
});
