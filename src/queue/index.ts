/**
 * The outgoing queue (docs/protocol.md §60.16): the port every backend offers, the durable
 * store, schedule and delivery pass they share, the embedded backend, its deliver function.
 */
export * from './port.ts';
export * from './types.ts';
export * from './schedule.ts';
export * from './limit.ts';
export * from './source.ts';
export * from './work.ts';
export * from './store.ts';
export * from './queue.ts';
export * from './deliver.ts';
