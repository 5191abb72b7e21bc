/**
 * RFC 3464 / RFC 6533 delivery status notifications at the legacy boundary
 * (docs/protocol.md §52): build them for legacy senders, parse the ones legacy MTAs
 * send back.
 */
export { buildDsn } from './build.ts';
export type { BuildDsnInput, BuiltDsn, Ret } from './build.ts';
export { parseDsn } from './parse.ts';
export type { ParsedDsn, ParseDsnOptions } from './parse.ts';
export { defaultDsnSources } from './sources.ts';
export type { DsnSources } from './sources.ts';
export { formatRfc5322Date, parseRfc5322Date } from './date.ts';
