/**
 * The metrics: after some calls, the exposition text (parsed here, not grepped) holds the
 * counted values; scrape-time gauges read their sources; each Metrics has its own registry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NmtpError } from '../../../src/core/errors/index.ts';
import { createMetrics } from '../../../src/gateway/observe/metrics.ts';

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Prometheus text format 0.0.4: `name{label="value",…} number` lines; # lines skipped. */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t !== null) types.set(t[1]!, t[2]!);
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m !== null, `not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;
    for (const l of (m[2] ?? '').matchAll(re)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

function value(
  samples: Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const s = samples.find(
    (x) =>
      x.name === name &&
      Object.keys(labels).length === Object.keys(x.labels).length &&
      Object.entries(labels).every(([k, v]) => x.labels[k] === v),
  );
  return s?.value;
}

test('counters, gauges and the latency histogram show what was counted', async () => {
  const m = createMetrics({ processMetrics: false });
  const endA = m.smtpConnection('accepted');
  const endB = m.smtpConnection('accepted');
  m.smtpConnection('refused');
  endA();
  endA(); // a second call does nothing
  m.smtpIn('rcpt', { code: 250 });
  m.smtpIn('rcpt', { code: 554, err: 'NMTP_ERR_GW_RELAY_DENIED' });
  m.smtpIn('rcpt', { code: 554, err: 'NMTP_ERR_GW_RELAY_DENIED' });
  m.smtpIn('data', { code: 250 });
  m.smtpIn('data', { code: 451 });
  m.queued('nmtp');
  m.queued('smtp');
  m.queued('nmtp');
  m.routed('nmtp');
  m.routed('temperror');
  m.delivered('nmtp', 'accepted', 2);
  m.delivered('nmtp', 'deferred', 3); // not final: not timed
  m.delivered('nmtp', 'given-up', 400_000);
  m.delivered('smtp', 'delivered', 0.05);
  m.delivered('smtp', 'deferred');
  m.dsn('queued', 'failed');
  m.dsn('suppressed', 'failed');
  m.dsn('suppressed', 'failed');
  m.convertFailed('NMTP_ERR_GW_BARE_LINE_END');
  m.convertFailed(new NmtpError('NMTP_ERR_GW_BARE_LINE_END'));
  m.convertFailed(new Error('surprise'));
  m.convertFailed('not a code');

  const { samples, types } = parseExposition(await m.text());
  const P = 'nmtp_gateway_';
  assert.equal(value(samples, `${P}smtp_connections`), 2); // B and the refused one are open
  assert.equal(value(samples, `${P}smtp_connections_total`, { result: 'accepted' }), 2);
  assert.equal(value(samples, `${P}smtp_connections_total`, { result: 'refused' }), 1);
  endB();
  assert.equal(
    value(samples, `${P}smtp_in_total`, { stage: 'rcpt', class: '2xx', err: 'none' }),
    1,
  );
  assert.equal(
    value(samples, `${P}smtp_in_total`, {
      stage: 'rcpt',
      class: '5xx',
      err: 'NMTP_ERR_GW_RELAY_DENIED',
    }),
    2,
  );
  assert.equal(
    value(samples, `${P}smtp_in_total`, { stage: 'data', class: '2xx', err: 'none' }),
    1,
  );
  assert.equal(
    value(samples, `${P}smtp_in_total`, { stage: 'data', class: '4xx', err: 'none' }),
    1,
  );
  assert.equal(value(samples, `${P}queued_total`, { kind: 'nmtp' }), 2);
  assert.equal(value(samples, `${P}queued_total`, { kind: 'smtp' }), 1);
  assert.equal(value(samples, `${P}routes_total`, { transport: 'temperror' }), 1);
  assert.equal(
    value(samples, `${P}recipients_out_total`, { direction: 'nmtp', outcome: 'accepted' }),
    1,
  );
  assert.equal(
    value(samples, `${P}recipients_out_total`, { direction: 'nmtp', outcome: 'deferred' }),
    1,
  );
  assert.equal(
    value(samples, `${P}recipients_out_total`, { direction: 'nmtp', outcome: 'rejected' }),
    0,
    'present from the start',
  );
  assert.equal(
    value(samples, `${P}recipients_out_total`, { direction: 'smtp', outcome: 'deferred' }),
    1,
  );
  assert.equal(value(samples, `${P}dsn_total`, { outcome: 'suppressed', action: 'failed' }), 2);
  assert.equal(value(samples, `${P}dsn_total`, { outcome: 'queued', action: 'failed' }), 1);
  assert.equal(value(samples, `${P}convert_errors_total`, { err: 'NMTP_ERR_GW_BARE_LINE_END' }), 2);
  assert.equal(value(samples, `${P}convert_errors_total`, { err: 'NMTP_ERR_INTERNAL' }), 2);

  // The histogram: final outcomes only, with cumulative buckets.
  const h = `${P}delivery_seconds`;
  assert.equal(types.get(h), 'histogram');
  assert.equal(value(samples, `${h}_count`, { direction: 'nmtp', outcome: 'accepted' }), 1);
  assert.equal(value(samples, `${h}_sum`, { direction: 'nmtp', outcome: 'accepted' }), 2);
  assert.equal(
    value(samples, `${h}_bucket`, { direction: 'nmtp', outcome: 'accepted', le: '1' }),
    0,
  );
  assert.equal(
    value(samples, `${h}_bucket`, { direction: 'nmtp', outcome: 'accepted', le: '5' }),
    1,
  );
  assert.equal(
    value(samples, `${h}_bucket`, { direction: 'nmtp', outcome: 'given-up', le: '432000' }),
    1,
  );
  assert.equal(
    value(samples, `${h}_bucket`, { direction: 'nmtp', outcome: 'given-up', le: '86400' }),
    0,
  );
  assert.equal(
    value(samples, `${h}_bucket`, { direction: 'smtp', outcome: 'delivered', le: '0.1' }),
    1,
  );
  assert.equal(value(samples, `${h}_count`, { direction: 'nmtp', outcome: 'deferred' }), undefined);
  assert.equal(types.get(`${P}recipients_out_total`), 'counter');
  assert.equal(types.get(`${P}smtp_connections`), 'gauge');

  const after = parseExposition(await m.text()).samples;
  assert.equal(value(after, `${P}smtp_connections`), 1);
});

test('queue depth and cookie states are read from their sources at scrape time', async () => {
  const m = createMetrics({ processMetrics: false, collectTimeout: 200 });
  const P = 'nmtp_gateway_';
  let scrapes = 0;
  let depth = { pending: 3, accepted: 10, deferred: 2, rejected: 1, 'given-up': 0 };
  m.collectFrom({
    queue: {
      counts: async () => {
        scrapes++;
        return depth;
      },
    },
    cookies: async () => ({ deferred: 4, accepted: 1 }),
  });
  let s = parseExposition(await m.text()).samples;
  assert.equal(scrapes, 1);
  assert.equal(value(s, `${P}queue_recipients`, { state: 'pending' }), 3);
  assert.equal(value(s, `${P}queue_recipients`, { state: 'deferred' }), 2);
  assert.equal(value(s, `${P}queue_recipients`, { state: 'given-up' }), 0);
  assert.equal(value(s, `${P}cookies`, { state: 'deferred' }), 4);
  assert.equal(value(s, `${P}cookies`, { state: 'accepted' }), 1);

  depth = { pending: 0, accepted: 13, deferred: 0, rejected: 3, 'given-up': 0 };
  s = parseExposition(await m.text()).samples;
  assert.equal(scrapes, 2);
  assert.equal(value(s, `${P}queue_recipients`, { state: 'pending' }), 0);
  assert.equal(value(s, `${P}queue_recipients`, { state: 'rejected' }), 3);

  // A failing source and one that never answers: the scrape still succeeds, without that
  // gauge's values, and the failure is counted.
  m.collectFrom({
    queue: { counts: () => Promise.reject(new Error('redis down')) },
    cookies: () => new Promise(() => undefined),
  });
  s = parseExposition(await m.text()).samples;
  assert.equal(value(s, `${P}queue_recipients`, { state: 'pending' }), undefined);
  assert.equal(value(s, `${P}cookies`, { state: 'deferred' }), undefined);
  assert.equal(value(s, `${P}collect_errors_total`, { source: 'queue' }), 1);
  assert.equal(value(s, `${P}collect_errors_total`, { source: 'cookies' }), 1);
});

test('process metrics are on the private registry; two Metrics do not share values', async () => {
  const a = createMetrics();
  const b = createMetrics();
  a.queued('nmtp');
  const sa = parseExposition(await a.text()).samples;
  const sb = parseExposition(await b.text()).samples;
  assert.equal(value(sa, 'nmtp_gateway_queued_total', { kind: 'nmtp' }), 1);
  assert.equal(value(sb, 'nmtp_gateway_queued_total', { kind: 'nmtp' }), undefined);
  assert.ok((value(sa, 'process_cpu_user_seconds_total') ?? -1) >= 0);
  assert.ok(sa.some((x) => x.name === 'nodejs_heap_size_used_bytes'));
  assert.match(a.contentType, /^text\/plain; version=0\.0\.4; charset=utf-8$/);
});
