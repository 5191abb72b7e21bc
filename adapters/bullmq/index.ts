/**
 * The queue port (src/queue/port.ts) on Redis with BullMQ: several gateway processes share
 * one durable queue (adapters/bullmq/queue.ts explains the key layout and durability).
 */
export {
  BullmqQueue,
  DEFAULT_MAX_MESSAGE_SIZE,
  DEFAULT_PREFIX,
  type BullmqQueueOptions,
} from './queue.ts';
