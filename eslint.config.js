// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

// Libraries that do I/O or wrap legacy mail: only adapters/ (and the programs that wire
// adapters together) may import them. The core is pure: bytes in, values and bytes out.
const LEGACY_AND_IO_LIBS = [
  'smtp-server',
  'nodemailer',
  'nodemailer/*',
  'mailparser',
  'libmime',
  'bullmq',
  'ioredis',
  '@zone-eu/mailsplit',
  'mailauth',
];
const IO_BUILTINS = [
  'fs',
  'fs/*',
  'net',
  'tls',
  'dns',
  'dns/*',
  'http',
  'https',
  'child_process',
  'timers',
  'timers/*',
  'dgram',
  'worker_threads',
  'cluster',
  'process',
  'os',
];

export default tseslint.config(
  { ignores: ['node_modules/**', 'test/vectors/**', 'test/fixtures/**'] },
  js.configs.recommended,
  ...tseslint.configs.strict,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  {
    // src/core is pure: no sockets, files, timers, clocks or randomness of its own.
    files: ['src/core/**/*.ts'],
    languageOptions: { globals: { ...globals['shared-node-browser'] } },
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ['crypto', 'node:crypto'].map((name) => ({
            name,
            importNames: [
              'randomBytes',
              'randomFill',
              'randomFillSync',
              'randomInt',
              'randomUUID',
              'generateKeyPair',
              'generateKeyPairSync',
              'getRandomValues',
            ],
            message: 'Randomness is passed in to src/core (e.g. a key seed).',
          })),
          patterns: [
            {
              group: LEGACY_AND_IO_LIBS,
              message: 'src/core is pure: legacy mail libraries live behind adapters/.',
            },
            {
              group: [...IO_BUILTINS, ...IO_BUILTINS.map((m) => `node:${m}`)],
              message: 'src/core is pure: I/O, timers and the process live outside it.',
            },
            {
              group: ['../../adapters/*', '../../../adapters/*', '**/adapters/**'],
              message: 'src/core must not depend on adapters/.',
            },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'setTimeout', message: 'Time is passed in; core has no timers.' },
        { name: 'setInterval', message: 'Time is passed in; core has no timers.' },
        { name: 'setImmediate', message: 'Time is passed in; core has no timers.' },
        { name: 'process', message: 'The process belongs to src/cli and services.' },
        { name: 'fetch', message: 'No network in core.' },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'The clock is passed in.' },
        { object: 'Math', property: 'random', message: 'Randomness is passed in.' },
        { object: 'crypto', property: 'getRandomValues', message: 'Randomness is passed in.' },
        { object: 'performance', property: 'now', message: 'The clock is passed in.' },
      ],
      'no-restricted-syntax': [
        'error',
        {
          selector: "NewExpression[callee.name='Date'][arguments.length=0]",
          message: 'The clock is passed in: new Date() without an argument reads it.',
        },
      ],
    },
  },
  {
    // Only adapters/ import the legacy mail libraries; services and the CLI go through them.
    files: ['src/**/*.ts'],
    ignores: ['src/core/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: LEGACY_AND_IO_LIBS,
              message: 'Legacy mail libraries are used behind adapters/ only.',
            },
          ],
        },
      ],
    },
  },
);
