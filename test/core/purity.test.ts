/**
 * "src/core/ is pure" is a rule the linter enforces, not just a sentence: these tests lint
 * small snippets as if they lived in src/core and check that each kind of impurity is
 * reported, and that the same code outside core is allowed where it should be.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ESLint } from 'eslint';

const eslint = new ESLint({ cwd: new URL('../..', import.meta.url).pathname });

async function ruleIds(code: string, filePath: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? []).map((m) => m.ruleId ?? m.message);
}

const impure: [string, string][] = [
  ['socket', "import net from 'node:net';\nexport const x = net;\n"],
  ['file system', "import { readFileSync } from 'node:fs';\nexport const x = readFileSync;\n"],
  [
    'legacy mail library',
    "import { simpleParser } from 'mailparser';\nexport const x = simpleParser;\n",
  ],
  ['queue library', "import { Queue } from 'bullmq';\nexport const x = Queue;\n"],
  [
    'randomness from crypto',
    "import { randomBytes } from 'node:crypto';\nexport const x = randomBytes;\n",
  ],
  ['clock', 'export const now = Date.now();\n'],
  ['clock via new Date()', 'export const now = new Date();\n'],
  ['Math.random', 'export const r = Math.random();\n'],
  ['timer', 'setTimeout(() => undefined, 1);\n'],
  ['process', 'export const env = process.env;\n'],
];

for (const [what, code] of impure) {
  test(`src/core may not use ${what}`, async () => {
    const ids = await ruleIds(code, 'src/core/example.ts');
    assert.ok(
      ids.some((id) => id.startsWith('no-restricted-')),
      `expected a purity violation, got ${JSON.stringify(ids)}`,
    );
  });
}

test('src/core may hash with node:crypto and build dates from given times', async () => {
  const code =
    "import { createHash } from 'node:crypto';\n" +
    "export const h = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();\n" +
    'export const d = (ms: number): Date => new Date(ms);\n';
  assert.deepEqual(await ruleIds(code, 'src/core/example.ts'), []);
});

test('services outside core may do I/O but still not import legacy mail libraries', async () => {
  assert.deepEqual(
    await ruleIds("import net from 'node:net';\nexport const x = net;\n", 'src/cli/example.ts'),
    [],
  );
  const ids = await ruleIds(
    "import nodemailer from 'nodemailer';\nexport const x = nodemailer;\n",
    'src/cli/example.ts',
  );
  assert.ok(ids.includes('no-restricted-imports'));
});
