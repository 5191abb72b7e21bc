/** Collects warnings (spec §50.10 lists the codes). */
import type { ConvertWarning } from './options.ts';
import type { WordNotes } from './encoded-words.ts';

/** Text read from octets whose charset label is unknown (§50.5.2, §50.3.2). */
export interface CharsetGuess {
  readonly part: number;
  /** "body", or the name of the header field. */
  readonly where: string;
  readonly label: string;
  readonly as: 'utf-8' | 'windows-1252';
}

export class Warnings {
  readonly list: ConvertWarning[] = [];
  /** Guesses that travel as provenance (Legacy-Warning, §50.7.5). */
  readonly guesses: CharsetGuess[] = [];
  add(code: string, detail: string, part?: number): void {
    this.list.push(part === undefined ? { code, detail } : { code, part, detail });
  }
  charsetGuessed(part: number, where: string, label: string, as: 'utf-8' | 'windows-1252'): void {
    this.add(
      'charset-unknown',
      `${where}: charset ${JSON.stringify(label)} unknown, read as ${as}`,
      part,
    );
    this.guesses.push({ part, where, label, as });
  }
}

/** Reports what decoding one field's encoded-words found (§50.3.2). */
export function reportNotes(w: Warnings, part: number, where: string, notes: WordNotes): void {
  for (const g of notes.guessed) w.charsetGuessed(part, where, g.label, g.as);
  if (notes.invalid > 0) {
    w.add(
      'encoded-word-invalid',
      `${where}: ${notes.invalid} encoded-word(s) with invalid octets`,
      part,
    );
  }
  for (const label of notes.unsupported) {
    w.add('charset-unsupported', `${where}: charset ${JSON.stringify(label)} kept encoded`, part);
  }
}
