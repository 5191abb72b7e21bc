/**
 * Regenerates docs/errors.md from the catalog (npm run docs:errors). A unit test fails
 * when the document and the catalog disagree, so the two cannot drift apart.
 */
import { writeFileSync } from 'node:fs';
import { ERROR_TABLES } from '../core/errors/index.ts';

const lines = [
  '# Error catalog',
  '',
  'Every error the project reports carries one of these stable codes. A code never changes',
  'meaning once published. *temporary* means a retry may succeed; *permanent* means it never',
  'will. *Scope* says what the error spoils: the `session`, one `message`, one `recipient`,',
  'or it is `local` (configuration or internal). Any error without a code is treated as',
  '`NMTP_ERR_INTERNAL`: temporary, because a wrong defer delays mail while a wrong permanent',
  'failure loses it. This file is generated from `src/core/errors/` by `npm run docs:errors`.',
  '',
];
for (const [table, codes] of Object.entries(ERROR_TABLES)) {
  lines.push(`## ${table}`, '', '| code | kind | scope | meaning |', '| --- | --- | --- | --- |');
  for (const [code, spec] of Object.entries(codes)) {
    const s = spec as { temporary: boolean; scope: string; summary: string };
    lines.push(
      `| \`${code}\` | ${s.temporary ? 'temporary' : 'permanent'} | ${s.scope} | ${s.summary.replaceAll('|', '\\|')} |`,
    );
  }
  lines.push('');
}
writeFileSync(new URL('../../docs/errors.md', import.meta.url), lines.join('\n'));
