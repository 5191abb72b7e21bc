/**
 * The configuration: config/gateway.yaml documents the embedded defaults and must be them;
 * every bad key or value is refused with its path and the value given; the examples in
 * config/examples/ validate.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { NmtpError } from '../../src/core/errors/index.ts';
import { DEFAULT_CONFIG, loadConfig, validateConfig } from '../../src/gateway/config.ts';

const root = new URL('../../config/', import.meta.url);

test('config/gateway.yaml is exactly the embedded defaults', () => {
  const doc = parse(readFileSync(new URL('gateway.yaml', root), 'utf8')) as unknown;
  assert.deepEqual(doc, DEFAULT_CONFIG);
  assert.deepEqual(validateConfig(doc), DEFAULT_CONFIG);
});

test('every example validates', () => {
  const dir = new URL('examples/', root);
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 3, 'beside Postfix, a half-migrated domain, a Redis cluster');
  for (const f of files) loadConfig(join(dir.pathname, f));
});

test('errors name the key and the value', () => {
  const bad = (doc: unknown, ...want: RegExp[]): void => {
    assert.throws(
      () => validateConfig(doc, 'f.yaml'),
      (e: unknown) => {
        assert.ok(e instanceof NmtpError);
        assert.equal(e.code, 'NMTP_ERR_GW_CONFIG_INVALID');
        for (const w of want) assert.match(e.message, w);
        return true;
      },
    );
  };
  bad({ smtp: { limits: { messageSize: -5 } } }, /f\.yaml: smtp\.limits\.messageSize: .*given: -5/);
  bad(
    { smtp: { relay: { networks: ['10.0.0.0/33'] } } },
    /smtp\.relay\.networks\.0/,
    /10\.0\.0\.0\/33/,
  );
  bad({ queue: { backend: 'kafka' } }, /queue\.backend/, /"kafka"/);
  bad(
    { smtp: { listeners: [{ protocol: 'smtp', listen: 'nohost' }] } },
    /smtp\.listeners\.0\.listen/,
  );
  bad({ routing: { domains: { 'a.example': 'carrier-pigeon' } } }, /routing\.domains\.a\.example/);
  bad({ gateway: { hostnme: 'x' } }, /gateway: Unrecognized key.*hostnme/);
  bad({ gateway: { heapGrowthPercent: 2.5 } }, /gateway\.heapGrowthPercent/, /2\.5/);
});

test('a file that is not YAML, or missing, is a coded error naming the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-config-'));
  const f = join(dir, 'x.yaml');
  writeFileSync(f, 'gateway: [unclosed');
  assert.throws(() => loadConfig(f), /NMTP_ERR_GW_CONFIG_INVALID: .*x\.yaml: not YAML/);
  assert.throws(
    () => loadConfig(join(dir, 'nope.yaml')),
    /NMTP_ERR_GW_CONFIG_INVALID: .*nope\.yaml/,
  );
  assert.deepEqual(loadConfig(undefined), DEFAULT_CONFIG);
});
