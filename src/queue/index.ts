/** The outgoing queue (docs/protocol.md §60.16): durable store, schedule, delivery manager. */
export * from './types.ts';
export * from './schedule.ts';
export * from './store.ts';
export * from './queue.ts';
export * from './deliver.ts';
