/**
 * The gateway's composition root: reads the configuration and wires adapters to services.
 * Nothing else in the tree chooses an adapter (a queue backend, the SMTP listener, the
 * SMTP deliverer); a test or a second backend plugs in here.
 *
 *   smtp-in ─────────▶ queue (embedded | bullmq) ──▶ qmgr pass (src/queue/work.ts)
 *   (adapters/smtp-    ▲         │ observer            ├─ nmtp entries: transfer client ──▶ NMTP peer
 *    server + src/     │         ▼                      └─ smtp entries: nodemailer ──▶ smarthost
 *    gateway/smtp-in)  └── dsn (src/gateway/dsn.ts: final outcomes → a DSN entry)
 *
 *   nmtp-receiver: the reference mailbox (src/server) for the gateway's local NMTP domains
 *   admin: /metrics, /healthz, /readyz (src/gateway/observe)
 */
import { availableParallelism } from 'node:os';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { createLegacySigner } from '../../adapters/legacy-auth/index.ts';
import { smtpDelivererOptions } from '../../adapters/smtp-sender/from-config.ts';
import { checkOutgoing } from '../../adapters/smtp-sender/outgoing-guard.ts';
import { smtpDeliverer } from '../../adapters/smtp-sender/smtp-deliver.ts';
import { startSmtpListener } from '../../adapters/smtp-listener/listener.ts';
import {
  domainKeyName,
  keyPairFromSeed,
  printDomainKeyRecord,
  seedFromPem,
  seedToPem,
} from '../core/keys/index.ts';
import { NmtpError } from '../core/errors/index.ts';
import type { SigningKey } from '../core/sign/index.ts';
import { inlineCleanup } from '../gateway/cleanup.ts';
import { CleanupPool } from '../gateway/cleanup-pool.ts';
import { cleanupThreads, type GatewayConfig } from '../gateway/config.ts';
import { tuneRuntime } from './runtime.ts';
import { createSrvLookup, createTxtLookup } from '../gateway/dns.ts';
import { createDsnService } from '../gateway/dsn.ts';
import { readiness, startAdmin } from '../gateway/observe/admin.ts';
import {
  createGatewayLog,
  errorFields,
  eventSink,
  type GatewayLog,
} from '../gateway/observe/log.ts';
import { createMetrics, type Metrics } from '../gateway/observe/metrics.ts';
import { composeObservers, createOutcomeLog } from '../gateway/outcomes.ts';
import type { Router } from '../gateway/ports.ts';
import { gatewayDecider } from '../gateway/reverse/decider.ts';
import { createReturnPath } from '../gateway/reverse/returns.ts';
import { ReverseService } from '../gateway/reverse/service.ts';
import { createTokens } from '../gateway/reverse/tokens.ts';
import { createRouter } from '../gateway/route.ts';
import { SmtpIn } from '../gateway/smtp-in.ts';
import { transferDeliver } from '../queue/deliver.ts';
import type { QueueBackend, QueueBackendOptions } from '../queue/port.ts';
import { Queue } from '../queue/queue.ts';
import { generateSelfSigned } from '../server/certs.ts';
import { serveMailbox } from '../server/serve.ts';

/** The package's version, for the start line of the log. */
const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

export interface StartOptions {
  /** Replaces the logger (tests: a silent one, or one that records). */
  readonly log?: GatewayLog;
  /** Opens the BullMQ backend (only the composition root imports it: see below). */
  readonly env?: NodeJS.ProcessEnv;
}

export interface RunningGateway {
  readonly config: GatewayConfig;
  readonly queue: QueueBackend;
  readonly metrics: Metrics;
  /** Bound ports by listener name: `smtp:0`, `lmtp:1`, `nmtp`, `admin`. */
  readonly ports: Readonly<Record<string, number>>;
  /** The gateway's public key record (what to publish as TXT at `keyName`). */
  readonly keyName: string;
  readonly keyRecord: string;
  /** Graceful: stop accepting, finish or hand back work in flight, release everything. */
  close(): Promise<void>;
}

/** The gateway's key: the configured file, or a demo key made once under stateDir. */
function loadKey(c: GatewayConfig): SigningKey {
  const file = c.gateway.keyFile ?? join(c.gateway.stateDir, 'domain.key');
  if (c.gateway.keyFile === undefined && !existsSync(file)) {
    mkdirSync(c.gateway.stateDir, { recursive: true, mode: 0o700 });
    writeFileSync(file, seedToPem(randomBytes(32)), { mode: 0o600, flag: 'wx' });
  }
  return keyPairFromSeed(seedFromPem(readFileSync(file, 'utf8')));
}

function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) };
}

export async function startGateway(
  c: GatewayConfig,
  o: StartOptions = {},
): Promise<RunningGateway> {
  tuneRuntime(c.gateway.heapGrowthPercent);
  const env = o.env ?? process.env;
  const log = o.log ?? createGatewayLog(c.log);
  const metrics = createMetrics();
  const run = new Set(c.gateway.services);
  if (c.queue.backend === 'embedded' && run.has('smtp-in') && !run.has('qmgr')) {
    // One process owns the embedded queue's directory: what it accepts, it must deliver.
    throw new NmtpError(
      'NMTP_ERR_GW_CONFIG_INVALID',
      'gateway.services: smtp-in without qmgr needs queue.backend bullmq (the embedded queue has one owner)',
    );
  }
  if (c.reverse.confirm === 'dsn' && c.queue.keepDone < c.reverse.confirmWindow) {
    // A cookie is answered from the queue entry: it must outlive the wait for the DSN.
    throw new NmtpError(
      'NMTP_ERR_GW_CONFIG_INVALID',
      'queue.keepDone must be at least reverse.confirmWindow (cookies are answered from kept entries)',
    );
  }
  log.event('gateway.start', { version: VERSION, services: [...run], backend: c.queue.backend });
  const key = loadKey(c);
  const keyName = domainKeyName(c.gateway.selector, c.gateway.domain);
  const keyRecord = printDomainKeyRecord({ publicKey: key.publicKey, flags: '' });
  const closers: (() => Promise<void>)[] = [];
  const ports: Record<string, number> = {};
  const close = async (): Promise<void> => {
    if (closers.length === 0) return;
    const t0 = Date.now();
    log.event('gateway.stop', {});
    // Reverse order: listeners first (stop accepting), then the queue (work in flight
    // finishes and is recorded), then what the queue delivered through.
    for (const f of closers.reverse())
      await f().catch((e: unknown) => log.event('gateway.error', { detail: String(e) }));
    closers.length = 0;
    log.event('gateway.stopped', { seconds: (Date.now() - t0) / 1000 });
  };

  try {
    // The demo certificate serves STARTTLS and the NMTP receiver when none is configured.
    const demo = (): { certFile: string; keyFile: string } =>
      generateSelfSigned(join(c.gateway.stateDir, 'tls'), c.gateway.hostname, 365, true);

    // smtp-out: the smarthost (Postfix) or each recipient domain's MX hosts.
    const smtpOutOptions = smtpDelivererOptions(c, { env });
    const smtpRoute = smtpOutOptions.mode === 'mx' ? 'mx' : 'smarthost';
    const smtpOut = smtpDeliverer(smtpOutOptions);
    closers.push(() => smtpOut.close());
    const receiver = c.nmtp.receiver;
    const own = hostPort(receiver.listen);
    // Services that start before the queue is open, or before the router exists, reach them
    // through `late` (the receiver must listen first: its port goes into the static SRV).
    const late: { queue?: QueueBackend; router?: Router; reverse?: ReverseService } = {};
    const lateQueue = (): QueueBackend => {
      if (late.queue === undefined) {
        throw new NmtpError('NMTP_ERR_TRANSPORT_LOCAL', 'the queue is not open yet');
      }
      return late.queue;
    };
    const tokens = createTokens(key);
    // DKIM + ARC of converted messages (reverse.dkim): keys checked now, not at first use.
    const dkim = c.reverse.dkim;
    const signer =
      dkim === undefined
        ? undefined
        : createLegacySigner({
            domain: dkim.domain,
            selector: dkim.selector,
            privateKeyPem: readFileSync(dkim.keyFile, 'utf8'),
            authservId: c.gateway.hostname,
            arc: dkim.arc,
            ...(dkim.arcSelector !== undefined && dkim.arcKeyFile !== undefined
              ? {
                  arcKey: {
                    selector: dkim.arcSelector,
                    privateKeyPem: readFileSync(dkim.arcKeyFile, 'utf8'),
                  },
                }
              : {}),
          });
    const returns = createReturnPath({
      localPart: c.reverse.returnPath,
      domain: c.gateway.domain,
      tokens,
      queue: lateQueue,
      log,
    });
    // The key record is known without DNS: our receiver verifies our signature with it.
    const ownTxt = [...c.routing.staticRecords.txt, { name: keyName, value: keyRecord }];
    if (run.has('nmtp-receiver') && receiver.enabled) {
      const receiverTxt = createTxtLookup({
        ...c.routing,
        staticRecords: { srv: [], txt: ownTxt },
      });
      // nmtp-in: NMTP senders' mail for the legacy side (the reverse direction, §52.12).
      const reverse = new ReverseService({
        config: c,
        queue: lateQueue,
        tokens,
        resolveTxt: receiverTxt,
        router: {
          route: (a) =>
            late.router === undefined
              ? Promise.resolve({ transport: 'temperror', address: a, why: 'starting' })
              : late.router.route(a),
        },
        offers: (rcpt) => smtpOut.capabilities(rcpt),
        probe: (rcpt) => smtpOut.probe(rcpt),
        ...(signer === undefined
          ? {}
          : { sign: (m: Uint8Array, authResults: string) => signer(m, { authResults }) }),
        checkOutgoing,
        log,
        metrics,
      });
      late.reverse = reverse;
      const tls =
        receiver.cert !== undefined && receiver.key !== undefined
          ? { certFile: receiver.cert, keyFile: receiver.key }
          : demo();
      const serving = await serveMailbox({
        ...own,
        ...tls,
        serverName: c.gateway.hostname,
        maildir: receiver.maildir,
        minPoll: receiver.minPoll,
        maxPoll: receiver.maxPoll,
        resolveTxt: receiverTxt,
        deciderFor: (mailbox) => gatewayDecider(mailbox, reverse),
        onRecovered: (f) =>
          log.event('nmtp-in.recovered', {
            detail: `tmp ${f.tmp}, cookie temporaries ${f.cookieTemps}, orphaned held ${f.held}`,
          }),
        onError: (e) => log.event('gateway.error', { service: 'nmtp-receiver', detail: String(e) }),
      });
      ports['nmtp'] = serving.port;
      closers.push(() => serving.close());
      log.event('gateway.listening', { service: 'nmtp-receiver', port: serving.port });
    }

    // Local NMTP domains are served by the gateway's own receiver: static SRV records point
    // there, and its key record is known without DNS (the receiver verifies our signature).
    const staticSrv = [
      ...c.routing.staticRecords.srv,
      ...(receiver.enabled
        ? receiver.domains.map((domain) => ({
            domain,
            target: c.gateway.hostname,
            port: ports['nmtp'] ?? own.port,
            priority: 0,
            weight: 0,
          }))
        : []),
    ];
    const routing = {
      ...c.routing,
      staticRecords: {
        srv: staticSrv,
        txt: ownTxt,
      },
    };
    const srv = createSrvLookup(routing);
    late.router = createRouter({ config: c, srv });

    const ca = [
      ...(c.nmtp.peerCa === undefined ? [] : [readFileSync(c.nmtp.peerCa, 'utf8')]),
      // Our own receiver's demo certificate is trusted by our own client.
      ...(receiver.enabled && receiver.cert === undefined
        ? [readFileSync(demo().certFile, 'utf8')]
        : []),
    ];
    const deliver = transferDeliver({
      identity: { domain: c.gateway.domain, selector: c.gateway.selector, key },
      srv,
      connect: {
        // `ca` replaces the system store: keep the system's roots beside ours.
        ...(ca.length === 0 ? {} : { ca: [...rootCertificates, ...ca].join('\n') }),
        ...(c.nmtp.insecurePeers ? { insecureTls: true } : {}),
        // A session carries one transfer at a time: as many sessions to a receiver as the
        // queue runs deliveries to its domain (the pool's own default, 4, held 20 to 4).
        maxPerDestination: c.queue.perDestination,
      },
    });
    // The DSN service adds its reports to the queue it observes: known once it is open.
    const opened: { queue?: QueueBackend } = {};
    const dsnService = createDsnService({
      queue: () => opened.queue!,
      hostname: c.gateway.hostname,
      domain: c.gateway.domain,
      delayWarning: c.dsn.delayWarning,
      // Remote-MTA for an SMTP answer that does not name its server (each new one does).
      ...(smtpOutOptions.mode === 'mx' ? {} : { smarthost: smtpOutOptions.host }),
      log,
      metrics,
    });
    const qo: QueueBackendOptions = {
      deliver,
      smtpDeliver: smtpOut,
      // The delivery log first (its marks are stored with what the DSN service writes).
      // Then nmtp-in's answer waits, woken by every change (its observer changes nothing).
      observer: composeObservers(
        createOutcomeLog({ log, metrics }),
        dsnService,
        (s) => late.reverse?.observe(s) ?? Promise.resolve(undefined),
      ),
      retry: c.queue.retry,
      concurrency: c.queue.concurrency,
      perDestination: c.queue.perDestination,
      // Toward MX hosts each recipient domain is a destination of its own (the limit above).
      smtpRoute,
      keepDone: c.queue.keepDone,
      onError: (e) => log.event('gateway.error', { service: 'qmgr', detail: String(e) }),
    };
    const q = await openQueue(c, qo, env, run.has('qmgr'));
    opened.queue = q;
    late.queue = q;
    metrics.collectFrom({ queue: q });
    closers.push(async () => {
      await q.close();
      await deliver.close();
    });

    if (run.has('smtp-in')) {
      const threads = cleanupThreads(c.smtp.cleanupThreads, availableParallelism());
      const cleanup =
        threads === 0
          ? inlineCleanup
          : await CleanupPool.start(
              threads,
              (e) => log.event('gateway.error', { service: 'cleanup', detail: String(e) }),
              { jobTimeoutMs: c.smtp.cleanupTimeout * 1000 },
            );
      // Closed after the listeners (closers run last first): their sessions' jobs finish.
      closers.push(() => cleanup.close());
      const handler = new SmtpIn({
        config: c,
        router: late.router,
        queue: q,
        returns,
        key,
        log,
        metrics,
        cleanup,
      });
      const tls =
        c.smtp.tls !== undefined ? { certFile: c.smtp.tls.cert, keyFile: c.smtp.tls.key } : demo();
      for (const [i, l] of c.smtp.listeners.entries()) {
        const at = hostPort(l.listen);
        const server = await startSmtpListener({
          protocol: l.protocol,
          ...at,
          config: c.smtp,
          hostname: c.smtp.banner ?? c.gateway.hostname,
          tls: { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) },
          handler,
          onEvent: eventSink(log),
        });
        ports[`${l.protocol}:${i}`] = server.port;
        closers.push(() => server.close());
        log.event('gateway.listening', {
          service: 'smtp-in',
          protocol: l.protocol,
          port: server.port,
        });
      }
    }

    if (run.has('admin') && c.admin.listen !== '') {
      const admin = await startAdmin({
        listen: c.admin.listen,
        metrics,
        queue: q,
        ready: readiness({ queue: () => q.ready() }),
        onError: (e) => log.event('gateway.error', errorFields(e)),
      });
      ports['admin'] = admin.port;
      closers.push(() => admin.close());
    }
    log.event('gateway.ready', { ports, backend: q.backend, key: keyName });
    return { config: c, queue: q, metrics, ports, keyName, keyRecord, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * The queue backend: the embedded queue by default; BullMQ is imported only when chosen,
 * so a site without Redis never loads it.
 */
export async function openQueue(
  c: GatewayConfig,
  o: QueueBackendOptions,
  env: NodeJS.ProcessEnv,
  work: boolean,
): Promise<QueueBackend> {
  if (c.queue.backend === 'embedded') {
    return Queue.open({ ...o, dir: c.queue.dir, ...(work ? {} : { timers: false }) });
  }
  const url = env[c.queue.redisUrlEnv];
  if (url === undefined || url === '') {
    throw new NmtpError(
      'NMTP_ERR_GW_CONFIG_INVALID',
      `queue.backend is bullmq: set ${c.queue.redisUrlEnv} to the Redis URL (redis://host:port/db)`,
    );
  }
  const { BullmqQueue } = await import('../../adapters/bullmq/index.ts');
  return BullmqQueue.open({ ...o, redis: url, prefix: c.queue.prefix, work });
}
