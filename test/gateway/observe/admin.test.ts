/**
 * The admin endpoint on 127.0.0.1 and an ephemeral port: /metrics, /healthz, /readyz (200
 * and 503), 404 and 405, HEAD, a request body never read, and close() ending keep-alive
 * connections (this file's process exits only if it does).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { readiness, startAdmin, type Readiness } from '../../../src/gateway/observe/admin.ts';
import { createMetrics } from '../../../src/gateway/observe/metrics.ts';

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly socket: Socket;
}

function get(
  port: number,
  path: string,
  o: { method?: string; agent?: Agent; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, method: o.method ?? 'GET', agent: o.agent ?? false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
            socket: req.socket!,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

test('GET /metrics, /healthz, /readyz, unknown paths and methods', async (t) => {
  const metrics = createMetrics({ processMetrics: false });
  metrics.queued('nmtp');
  let state: Readiness | Error = { ok: true, checks: { queue: true, smtp: true } };
  const errors: unknown[] = [];
  const admin = await startAdmin({
    listen: '127.0.0.1:0',
    metrics,
    ready: async () => {
      if (state instanceof Error) throw state;
      return state;
    },
    onError: (e) => errors.push(e),
  });
  t.after(() => admin.close());
  assert.ok(admin.port > 0);

  const m = await get(admin.port, '/metrics');
  assert.equal(m.status, 200);
  assert.equal(m.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  assert.match(m.body, /^nmtp_gateway_queued_total\{kind="nmtp"\} 1$/m);
  assert.equal(Number(m.headers['content-length']), Buffer.byteLength(m.body));

  const h = await get(admin.port, '/healthz');
  assert.deepEqual([h.status, h.body], [200, 'ok\n']);

  const r = await get(admin.port, '/readyz?verbose=1');
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(r.body), { ok: true, checks: { queue: true, smtp: true } });

  state = { ok: false, checks: { queue: false, smtp: true } };
  const down = await get(admin.port, '/readyz');
  assert.equal(down.status, 503);
  assert.deepEqual(JSON.parse(down.body), { ok: false, checks: { queue: false, smtp: true } });

  // ok: true with a failing check is still not ready.
  state = { ok: true, checks: { queue: false } };
  assert.equal((await get(admin.port, '/readyz')).status, 503);

  // A check that throws is a 503 too, reported to onError.
  state = new Error('redis down');
  const thrown = await get(admin.port, '/readyz');
  assert.equal(thrown.status, 503);
  assert.deepEqual(JSON.parse(thrown.body), { ok: false, checks: {} });
  assert.match(String(errors[0]), /redis down/);

  for (const path of ['/', '/metrics/', '/favicon.ico', '/../metrics', '/healthz/x']) {
    assert.equal((await get(admin.port, path)).status, 404, path);
  }
  const post = await get(admin.port, '/metrics', { method: 'POST', body: 'x'.repeat(100_000) });
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, 'GET, HEAD');
  assert.equal(post.headers.connection, 'close', 'a body is never read: the connection closes');
});

test('HEAD answers the same headers without a body', async (t) => {
  const metrics = createMetrics({ processMetrics: false });
  const admin = await startAdmin({
    listen: '127.0.0.1:0',
    metrics,
    ready: async () => ({ ok: false, checks: { queue: false } }),
  });
  t.after(() => admin.close());
  for (const [path, status] of [
    ['/metrics', 200],
    ['/healthz', 200],
    ['/readyz', 503],
    ['/nope', 404],
  ] as const) {
    const g = await get(admin.port, path);
    const h = await get(admin.port, path, { method: 'HEAD' });
    assert.equal(h.status, status, path);
    assert.equal(h.body, '', path);
    assert.equal(h.headers['content-type'], g.headers['content-type'], path);
    if (path !== '/metrics') {
      // (The metrics text changes between two scrapes: only its type is compared.)
      assert.equal(h.headers['content-length'], g.headers['content-length'], path);
    }
  }
});

test('close() ends idle keep-alive connections and waits for none', async () => {
  const metrics = createMetrics({ processMetrics: false });
  const admin = await startAdmin({
    listen: '127.0.0.1:0',
    metrics,
    ready: async () => ({ ok: true, checks: {} }),
  });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const a = await get(admin.port, '/healthz', { agent });
    const b = await get(admin.port, '/metrics', { agent });
    assert.equal(a.socket, b.socket, 'one kept-alive connection');
    assert.notEqual(a.headers.connection, 'close');
    const ended = new Promise<void>((resolve) => a.socket.once('close', () => resolve()));
    // A raw connection that never sends a request is cut as well.
    const raw = connect(admin.port, '127.0.0.1');
    await new Promise<void>((resolve) => raw.once('connect', () => resolve()));
    const rawEnded = new Promise<void>((resolve) => raw.once('close', () => resolve()));
    raw.on('error', () => undefined);
    await admin.close();
    await ended;
    await rawEnded;
    await admin.close(); // twice is fine
    await assert.rejects(get(admin.port, '/healthz'), /ECONNREFUSED/);
  } finally {
    agent.destroy();
  }
});

test('a listen address in use is an error; a bad one is refused', async (t) => {
  const metrics = createMetrics({ processMetrics: false });
  const ready = async (): Promise<Readiness> => ({ ok: true, checks: {} });
  const first = await startAdmin({ listen: '127.0.0.1:0', metrics, ready });
  t.after(() => first.close());
  await assert.rejects(
    startAdmin({ listen: `127.0.0.1:${first.port}`, metrics, ready }),
    /EADDRINUSE/,
  );
  await assert.rejects(
    startAdmin({ listen: 'nowhere', metrics, ready }),
    /NMTP_ERR_INVALID_ARGUMENT/,
  );
});

test('a scrape in progress at close() gets its answer, then the connection closes', async () => {
  let started!: () => void;
  const inText = new Promise<void>((resolve) => (started = resolve));
  let finish!: (s: string) => void;
  const admin = await startAdmin({
    listen: '127.0.0.1:0',
    metrics: {
      contentType: 'text/plain; version=0.0.4; charset=utf-8',
      text: () => {
        started();
        return new Promise<string>((resolve) => (finish = resolve));
      },
    },
    ready: async () => ({ ok: true, checks: {} }),
  });
  const agent = new Agent({ keepAlive: true });
  try {
    const answer = get(admin.port, '/metrics', { agent });
    await inText;
    let closed = false;
    const closing = admin.close().then(() => (closed = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(closed, false, 'close() waits for the request in progress');
    finish('x 1\n');
    const a = await answer;
    assert.deepEqual([a.status, a.body, a.headers.connection], [200, 'x 1\n', 'close']);
    await closing;
  } finally {
    agent.destroy();
  }
});

test('a /metrics that does not answer in time is a 500, reported', async (t) => {
  const errors: unknown[] = [];
  const admin = await startAdmin({
    listen: '127.0.0.1:0',
    metrics: { contentType: 'text/plain', text: () => new Promise<string>(() => undefined) },
    ready: async () => ({ ok: true, checks: {} }),
    timeout: 20,
    onError: (e) => errors.push(e),
  });
  t.after(() => admin.close());
  const a = await get(admin.port, '/metrics');
  assert.equal(a.status, 500);
  assert.match(String(errors[0]), /no answer within 20 ms/);
});

test('readiness(): named checks; one that throws or hangs is false', async () => {
  const ready = readiness(
    {
      queue: async () => true,
      smtp: async () => true,
    },
    50,
  );
  assert.deepEqual(await ready(), { ok: true, checks: { queue: true, smtp: true } });
  const notReady = readiness(
    {
      queue: () => Promise.reject(new Error('redis down')),
      smtp: async () => true,
      dns: () => new Promise<boolean>(() => undefined),
    },
    20,
  );
  assert.deepEqual(await notReady(), {
    ok: false,
    checks: { queue: false, smtp: true, dns: false },
  });
});
