/**
 * The BullMQ backend's key layout and job names (adapters/bullmq/keys.ts): every key under
 * the prefix, one per kind and entry, and job ids BullMQ accepts that keep id and due apart.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jobIdFor, keysFor, WORK_QUEUE } from '../../../adapters/bullmq/keys.ts';

test('every key of an entry lies under the prefix, one per kind', () => {
  const k = keysFor('q1');
  const id = 'Ab-9_z';
  const all = [
    k.msg(id),
    k.state(id),
    k.lock(id),
    k.again(id),
    k.tmp(id, 'n0'),
    k.ids,
    k.seq,
    k.unobserved,
  ];
  assert.deepEqual(all, [
    'q1:msg:Ab-9_z',
    'q1:state:Ab-9_z',
    'q1:lock:Ab-9_z',
    'q1:again:Ab-9_z',
    'q1:tmp:Ab-9_z:n0',
    'q1:ids',
    'q1:seq',
    'q1:unobserved',
  ]);
  assert.equal(new Set(all).size, all.length);
  // BullMQ's keys are "<prefix>:work:…": never one of ours.
  for (const key of all) assert.ok(!key.startsWith(`q1:${WORK_QUEUE}:`));
  // Another prefix shares nothing.
  assert.notEqual(keysFor('q2').state(id), k.state(id));
});

test('a prefix that could confuse Redis or BullMQ is refused', () => {
  for (const bad of ['', 'a b', 'x{y}', 'tab\t']) assert.throws(() => keysFor(bad));
  assert.doesNotThrow(() => keysFor('nmtp-queue'));
});

test('job ids: one per entry and due second, never an integer nor with a colon', () => {
  assert.equal(jobIdFor('abc', 1_800_000_000), 'abc.1800000000');
  assert.equal(jobIdFor('abc', 1_800_000_000, 'f00d'), 'abc.1800000000.f00d');
  // An all-digit entry id still makes a non-integer job id (BullMQ refuses integers).
  const j = jobIdFor('123', 4);
  assert.notEqual(`${parseInt(j, 10)}`, j);
  assert.ok(!j.includes(':'));
  // '.' is not in the id alphabet (§60.4): "a-1" due 5 and "a" due "1-5" cannot collide.
  assert.notEqual(jobIdFor('a-1', 5), jobIdFor('a', 15));
  assert.notEqual(jobIdFor('a', 1), jobIdFor('a', 2));
});
