/**
 * NMTP/1 sessions as pure reducers (docs/protocol.md §60.10–§60.11): the
 * transfer server, the submission server, the CSV evaluation and the decider types.
 */
export * from './common.ts';
export * from './csv.ts';
export * from './decider.ts';
export * from './transfer-server.ts';
export * from './submission-server.ts';
export * from './transfer-client.ts';
export * from './submission-client.ts';
export * from './received.ts';
export * from './view.ts';
