/**
 * The NMTP/1 wire protocol (docs/protocol.md): command and reply lines,
 * length-prefixed chunks, the incremental decoder and the printers. Pure: bytes in, values
 * out.
 */
export * from './limits.ts';
export * from './syntax.ts';
export * from './codec.ts';
