/** Collects warnings (spec §50.10 lists the codes). */
import type { ConvertWarning } from './options.ts';

export class Warnings {
  readonly list: ConvertWarning[] = [];
  add(code: string, detail: string, part?: number): void {
    this.list.push(part === undefined ? { code, detail } : { code, part, detail });
  }
}
