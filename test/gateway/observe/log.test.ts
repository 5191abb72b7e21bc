/**
 * The logger's output: JSON lines carrying the event's fields, levels from the config and
 * the catalog, the pretty form on one line, silence, and stderr as the default sink.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  createGatewayLog,
  errorFields,
  prettyLine,
  silentLog,
} from '../../../src/gateway/observe/log.ts';
import { NmtpError } from '../../../src/core/errors/index.ts';

const T0 = Date.UTC(2030, 0, 2, 3, 4, 5, 678);

function sink(): { raw: string[]; write(s: string): void } {
  const raw: string[] = [];
  return { raw, write: (s) => void raw.push(s) };
}

test('json: one object per line with level, time, event and the fields', () => {
  const out = sink();
  const log = createGatewayLog({ destination: out, now: () => T0 });
  log.event('nmtp.delivered', {
    queueId: 'Q1',
    rcpt: 'anna@example.org',
    relay: 'mx.example.org:4025',
    remoteId: 'r-9',
    attempts: 1,
    delay: 2.5,
  });
  log.event('gateway.ready', { services: ['smtp-in', 'qmgr'], ports: { smtp: 2525 } });
  assert.equal(out.raw.length, 2);
  for (const l of out.raw) {
    assert.ok(l.endsWith('\n') && !l.slice(0, -1).includes('\n'), 'one line each');
  }
  const o = JSON.parse(out.raw[0]!) as Record<string, unknown>;
  assert.equal(o.level, 'info');
  assert.equal(o.time, '2030-01-02T03:04:05.678Z');
  assert.equal(o.event, 'nmtp.delivered');
  assert.equal(o.pid, process.pid);
  assert.equal(typeof o.hostname, 'string');
  assert.deepEqual(
    { ...o, pid: undefined, hostname: undefined },
    {
      level: 'info',
      time: '2030-01-02T03:04:05.678Z',
      event: 'nmtp.delivered',
      queueId: 'Q1',
      rcpt: 'anna@example.org',
      relay: 'mx.example.org:4025',
      remoteId: 'r-9',
      attempts: 1,
      delay: 2.5,
      pid: undefined,
      hostname: undefined,
    },
  );
  const ready = JSON.parse(out.raw[1]!) as Record<string, unknown>;
  assert.deepEqual(ready.services, ['smtp-in', 'qmgr']);
  assert.deepEqual(ready.ports, { smtp: 2525 });
});

test('each event logs at its catalog level; the configured level filters', () => {
  const out = sink();
  const log = createGatewayLog({ destination: out, level: 'warn' });
  log.event('route.decided', { rcpt: 'a@b', transport: 'nmtp' }); // debug
  log.event('queue.removed', { queueId: 'q' }); // info
  log.event('route.temperror', { rcpt: 'a@b', why: 'SERVFAIL' }); // warn
  log.event('gateway.error', { detail: 'boom' }); // error
  log.event('config.invalid', { detail: 'x: bad' }); // fatal
  const levels = out.raw.map((l) => (JSON.parse(l) as { level: string; event: string }).level);
  assert.deepEqual(levels, ['warn', 'error', 'fatal']);
  assert.equal(log.enabled('info'), false);
  assert.equal(log.enabled('warn'), true);

  const debug = sink();
  createGatewayLog({ destination: debug, level: 'debug' }).event('route.decided', {
    rcpt: 'a@b',
    transport: 'smtp',
    via: 'domain',
    why: 'routing.domains',
  });
  assert.equal(debug.raw.length, 1);
});

test('silent writes nothing, even through a given destination', () => {
  const out = sink();
  createGatewayLog({ destination: out, level: 'silent' }).event('gateway.error', { detail: 'x' });
  silentLog().event('gateway.error', { detail: 'x' });
  assert.equal(out.raw.length, 0);
});

test('pretty: one line, time level event key=value, hostile values quoted and escaped', () => {
  const out = sink();
  const log = createGatewayLog({ destination: out, format: 'pretty', now: () => T0 });
  log.child({ service: 'smtp-in' }).event('smtp.rcpt.refused', {
    session: 'S1',
    client: '192.0.2.1',
    rcpt: 'bob@example.org',
    from: '',
    helo: 'evil\r\n\x1b[31mhost \u009b2J \u202etxt',
    code: 550,
    enhanced: '5.7.1',
    err: 'NMTP_ERR_GW_RELAY_DENIED',
    text: 'relay access denied',
  });
  assert.equal(out.raw.length, 1);
  const line = out.raw[0]!;
  assert.ok(line.endsWith('\n'));
  assert.equal(line.slice(0, -1).split('\n').length, 1, 'one line');
  // Nothing but the final LF is a control, format or bidi character.
  assert.doesNotMatch(line.slice(0, -1), /[\p{Cc}\p{Cf}]/u, 'no control or bidi characters');
  assert.equal(
    line,
    '2030-01-02T03:04:05.678Z info  smtp.rcpt.refused service=smtp-in session=S1 ' +
      'client=192.0.2.1 rcpt=bob@example.org from="" ' +
      'helo="evil\\r\\n\\u001b[31mhost \\u009b2J \\u202etxt" code=550 enhanced=5.7.1 ' +
      'err=NMTP_ERR_GW_RELAY_DENIED text="relay access denied"\n',
  );
  // Arrays and objects are compact JSON; UTF-8 addresses stay readable.
  assert.equal(
    prettyLine(
      '{"level":"info","time":"t","event":"gateway.ready","services":["a","b"],"rcpt":"jörg@bücher.example"}',
    ),
    't info  gateway.ready services=["a","b"] rcpt=jörg@bücher.example\n',
  );
});

test('errorFields: a catalog error keeps its code; anything else is NMTP_ERR_INTERNAL with a stack', () => {
  assert.deepEqual(errorFields(new NmtpError('NMTP_ERR_GW_RELAY_DENIED', 'no')), {
    err: 'NMTP_ERR_GW_RELAY_DENIED',
    detail: 'NMTP_ERR_GW_RELAY_DENIED: no',
  });
  const f = errorFields(new TypeError('x is undefined'));
  assert.equal(f.err, 'NMTP_ERR_INTERNAL');
  assert.equal(f.detail, 'x is undefined');
  assert.match(f.stack ?? '', /TypeError: x is undefined/);
  assert.deepEqual(errorFields('plain'), { err: 'NMTP_ERR_INTERNAL', detail: 'plain' });
});

test('by default lines go to stderr, synchronously, and stdout stays clean', () => {
  const logTs = fileURLToPath(new URL('../../../src/gateway/observe/log.ts', import.meta.url));
  const script = [
    `const { createGatewayLog } = await import(${JSON.stringify(logTs)});`,
    `const log = createGatewayLog({ format: process.argv[1] });`,
    `log.event('config.invalid', { file: 'x.yaml', detail: 'queue.backend: bad' });`,
    // Written before exit, not lost in a buffer.
    `process.exit(78);`,
  ].join('\n');
  for (const format of ['json', 'pretty']) {
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script, format],
      { encoding: 'utf8', cwd: fileURLToPath(new URL('../../../', import.meta.url)) },
    );
    assert.equal(r.status, 78, r.stderr);
    assert.equal(r.stdout, '');
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, r.stderr);
    if (format === 'json') {
      const o = JSON.parse(lines[0]!) as Record<string, unknown>;
      assert.equal(o.event, 'config.invalid');
      assert.equal(o.level, 'fatal');
      assert.equal(o.file, 'x.yaml');
    } else {
      assert.match(
        lines[0]!,
        /^\S+ fatal config\.invalid file=x\.yaml detail="queue\.backend: bad"$/,
      );
    }
  }
});
