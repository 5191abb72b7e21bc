/**
 * The router (src/gateway/route.ts) and `nmtp-gateway route` (route-command.ts), with the
 * gateway's SRV lookup (src/gateway/dns.ts) over an injected wire query and clock: rules in
 * every order, IDN domains in U-label and A-label form, case, the cache seen through the
 * router, addresses NMTP cannot carry, invalid addresses, and the command's lines and exit
 * codes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig, type GatewayConfig } from '../../src/gateway/config.ts';
import { createSrvLookup, type SrvQuery, type SrvQueryResult } from '../../src/gateway/dns.ts';
import { createRouter } from '../../src/gateway/route.ts';
import { routeCommand } from '../../src/gateway/route-command.ts';
import type { RouteDecision } from '../../src/gateway/ports.ts';

const MX = { name: 'mx.example.org', port: 4025, priority: 0, weight: 0 };

/** A DNS stand-in: answers per full SRV name (default: none), counting the questions. */
function fakeDns(answers: Record<string, SrvQueryResult> = {}) {
  const asked: string[] = [];
  const query: SrvQuery = (name) => {
    asked.push(name);
    return Promise.resolve(answers[name] ?? { status: 'none' });
  };
  return { query, asked, answers };
}

function setup(doc: unknown, answers: Record<string, SrvQueryResult> = {}) {
  const config = validateConfig(doc);
  let t = 1_700_000_000_000;
  const clock = { now: () => t, advance: (ms: number) => void (t += ms) };
  const dns = fakeDns(answers);
  const srv = createSrvLookup(config.routing, { now: clock.now, query: dns.query });
  const router = createRouter({ config, srv });
  return { config, clock, dns, router };
}

const srvOf = (domain: string): string => `_nmtp-transfer._tcp.${domain}`;
const ok = (ttl: number, targets = [MX]): SrvQueryResult => ({ status: 'ok', targets, ttl });

/** The parts of a decision a test compares (not `why`, checked by pattern). */
function brief(d: RouteDecision): string {
  if (d.transport === 'invalid') return `invalid ${d.err}`;
  if (d.transport === 'temperror') return 'temperror';
  return `${d.transport} ${d.via} ${d.address}`;
}

test('default dns: a published _nmtp-transfer._tcp record routes to NMTP, with its evidence', async () => {
  const { router, dns } = setup({}, { [srvOf('example.org')]: ok(300) });
  const d = await router.route('alice@example.org');
  assert.equal(brief(d), 'nmtp dns-srv alice@example.org');
  assert.equal(d.why, 'dns-srv: _nmtp-transfer._tcp.example.org → mx.example.org:4025 (ttl 300)');
  assert.deepEqual(dns.asked, ['_nmtp-transfer._tcp.example.org']);
});

test('default dns: no record routes to SMTP, the address kept as given', async () => {
  const { router } = setup({ routing: { negativeTtl: 60 } });
  const d = await router.route('Bob@Legacy.Example');
  assert.equal(brief(d), 'smtp dns-none Bob@Legacy.Example');
  assert.equal(
    d.why,
    'dns-none: no _nmtp-transfer._tcp.legacy.example record (negative, kept 60 s)',
  );
});

test('default dns: a DNS failure is a temperror, and the next recipient asks again', async () => {
  const { router, dns } = setup(
    {},
    { [srvOf('flaky.example')]: { status: 'temperror', detail: 'SERVFAIL' } },
  );
  const d = await router.route('a@flaky.example');
  assert.equal(brief(d), 'temperror');
  assert.match(d.why, /^dns-temperror: _nmtp-transfer\._tcp\.flaky\.example: .*SERVFAIL/);
  dns.answers[srvOf('flaky.example')] = ok(300);
  assert.equal(brief(await router.route('a@flaky.example')), 'nmtp dns-srv a@flaky.example');
  assert.equal(dns.asked.length, 2);
});

test('default dns: a lookup that throws is a temperror (unknown errors are temporary)', async () => {
  const config = validateConfig({});
  const router = createRouter({ config, srv: () => Promise.reject(new Error('boom')) });
  const d = await router.route('a@example.org');
  assert.equal(d.transport, 'temperror');
  assert.match(d.why, /boom/);
});

test('a static SRV record decides without asking DNS', async () => {
  const { router, dns } = setup({
    routing: {
      staticRecords: {
        srv: [{ domain: 'Static.Example', target: 'nmtp.static.example', port: 14025 }],
      },
    },
  });
  const d = await router.route('x@static.example');
  assert.equal(brief(d), 'nmtp static-srv x@static.example');
  assert.equal(
    d.why,
    'static-srv: _nmtp-transfer._tcp.static.example → nmtp.static.example:14025 (routing.staticRecords.srv)',
  );
  assert.deepEqual(dns.asked, []);
});

test('routing.default nmtp / smtp decide without DNS', async () => {
  for (const dflt of ['nmtp', 'smtp'] as const) {
    const { router, dns } = setup({ routing: { default: dflt } });
    const d = await router.route('a@anywhere.example');
    assert.equal(brief(d), `${dflt} default a@anywhere.example`);
    assert.equal(d.why, `default: routing.default = ${dflt}`);
    assert.deepEqual(dns.asked, []);
  }
});

// Precedence: address override → domain override → receiver domain → default (DNS). Each
// case makes every later rule say the opposite, so only the right rule gives the answer.
test('rules in every order: the first that matches decides', async () => {
  const domain = 'split.example';
  const cases: { name: string; doc: object; dns: SrvQueryResult; want: string }[] = [
    {
      name: 'address smtp over domain nmtp',
      doc: { routing: { addresses: { 'a@split.example': 'smtp' }, domains: { [domain]: 'nmtp' } } },
      dns: ok(300),
      want: 'smtp address a@split.example',
    },
    {
      name: 'address nmtp over domain smtp',
      doc: { routing: { addresses: { 'a@split.example': 'nmtp' }, domains: { [domain]: 'smtp' } } },
      dns: { status: 'none' },
      want: 'nmtp address a@split.example',
    },
    {
      name: 'address smtp over receiver domain',
      doc: {
        routing: { addresses: { 'a@split.example': 'smtp' } },
        nmtp: { receiver: { domains: [domain] } },
      },
      dns: ok(300),
      want: 'smtp address a@split.example',
    },
    {
      name: 'domain smtp over receiver domain',
      doc: {
        routing: { domains: { [domain]: 'smtp' } },
        nmtp: { receiver: { domains: [domain] } },
      },
      dns: ok(300),
      want: 'smtp domain a@split.example',
    },
    {
      name: 'domain nmtp over DNS none',
      doc: { routing: { domains: { [domain]: 'nmtp' } } },
      dns: { status: 'none' },
      want: 'nmtp domain a@split.example',
    },
    {
      name: 'domain smtp over a DNS record',
      doc: { routing: { domains: { [domain]: 'smtp' } } },
      dns: ok(300),
      want: 'smtp domain a@split.example',
    },
    {
      name: 'receiver domain over DNS none',
      doc: { nmtp: { receiver: { domains: [domain] } } },
      dns: { status: 'none' },
      want: 'nmtp domain a@split.example',
    },
    {
      name: 'receiver domain over default smtp',
      doc: { routing: { default: 'smtp' }, nmtp: { receiver: { domains: [domain] } } },
      dns: { status: 'none' },
      want: 'nmtp domain a@split.example',
    },
    {
      name: 'domain nmtp over default smtp',
      doc: { routing: { default: 'smtp', domains: { [domain]: 'nmtp' } } },
      dns: { status: 'none' },
      want: 'nmtp domain a@split.example',
    },
    {
      name: 'address smtp over default nmtp',
      doc: { routing: { default: 'nmtp', addresses: { 'a@split.example': 'smtp' } } },
      dns: ok(300),
      want: 'smtp address a@split.example',
    },
  ];
  for (const c of cases) {
    const { router, dns } = setup(c.doc, { [srvOf(domain)]: c.dns });
    assert.equal(brief(await router.route('a@split.example')), c.want, c.name);
    // A rule above DNS never asks it.
    assert.deepEqual(dns.asked, [], c.name);
    // Another mailbox of the domain is not touched by an address override.
    const other = await router.route('b@split.example');
    assert.notEqual(
      other.transport === 'nmtp' || other.transport === 'smtp' ? other.via : '',
      'address',
    );
  }
});

test('why names the rule and the key as written', async () => {
  const { router } = setup({
    routing: {
      addresses: { 'Anna@Bücher.Example': 'smtp' },
      domains: { 'BÜCHER.example': 'nmtp' },
    },
    nmtp: { receiver: { domains: ['own.example'] } },
  });
  assert.equal(
    (await router.route('Anna@xn--bcher-kva.example')).why,
    'address: routing.addresses["Anna@Bücher.Example"] = smtp',
  );
  assert.equal(
    (await router.route('bert@bücher.example')).why,
    'domain: routing.domains["BÜCHER.example"] = nmtp',
  );
  assert.equal(
    (await router.route('c@own.example')).why,
    `receiver: "own.example" is in nmtp.receiver.domains (this gateway's NMTP receiver)`,
  );
});

test('IDN: U-label and A-label keys and recipients meet in one form, any case', async () => {
  for (const key of [
    'bücher.example',
    'xn--bcher-kva.example',
    'BÜCHER.EXAMPLE',
    'XN--BCHER-KVA.Example',
  ]) {
    const { router } = setup({ routing: { default: 'smtp', domains: { [key]: 'nmtp' } } });
    for (const rcpt of [
      'anna@bücher.example',
      'anna@xn--bcher-kva.example',
      'anna@Bücher.Example',
    ]) {
      const d = await router.route(rcpt);
      // NMTP carries the canonical form: A-label domain, local part as is.
      assert.equal(brief(d), 'nmtp domain anna@xn--bcher-kva.example', `${key} / ${rcpt}`);
    }
  }
});

test('IDN: DNS is asked in A-label form, lower case', async () => {
  const { router, dns } = setup({}, { [srvOf('xn--bcher-kva.example')]: ok(60) });
  assert.equal(
    brief(await router.route('Zoë@BÜCHER.example')),
    'nmtp dns-srv Zoë@xn--bcher-kva.example',
  );
  assert.deepEqual(dns.asked, ['_nmtp-transfer._tcp.xn--bcher-kva.example']);
});

test('address overrides: canonical comparison; local parts are case-sensitive', async () => {
  const { router } = setup({
    routing: {
      default: 'smtp',
      addresses: { 'Anna@Bücher.Example': 'nmtp', 'john.smith@x.example': 'nmtp' },
    },
  });
  assert.equal(
    brief(await router.route('Anna@xn--bcher-kva.example')),
    'nmtp address Anna@xn--bcher-kva.example',
  );
  assert.equal(
    brief(await router.route('Anna@BÜCHER.EXAMPLE')),
    'nmtp address Anna@xn--bcher-kva.example',
  );
  // RFC 5321 §4.1.2: "john.smith" quoted is the same local part.
  assert.equal(
    brief(await router.route('"john.smith"@x.example')),
    'nmtp address john.smith@x.example',
  );
  // A different case in the local part is another mailbox.
  assert.equal(
    brief(await router.route('anna@bücher.example')),
    'smtp default anna@bücher.example',
  );
});

test('a legacy address NMTP cannot carry goes to SMTP as given, and is invalid for NMTP', async () => {
  const quoted = '"john smith"@Legacy.Example';
  {
    const { router } = setup({});
    const d = await router.route(quoted);
    assert.equal(brief(d), `smtp dns-none ${quoted}`);
  }
  {
    const { router } = setup({}, { [srvOf('legacy.example')]: ok(300) });
    const d = await router.route(quoted);
    assert.equal(brief(d), 'invalid NMTP_ERR_ADDR_LEGACY_UNMAPPABLE');
    assert.match(d.why, /^dns-srv: .*; but NMTP cannot carry it: .*john smith/);
  }
  {
    const { router } = setup({ routing: { domains: { 'legacy.example': 'nmtp' } } });
    assert.equal(brief(await router.route(quoted)), 'invalid NMTP_ERR_ADDR_LEGACY_UNMAPPABLE');
  }
  {
    // An address override may name it in legacy form (quotes, any domain case) to keep it on SMTP.
    const { router } = setup({
      routing: {
        domains: { 'legacy.example': 'nmtp' },
        addresses: { '"john smith"@legacy.example': 'smtp' },
      },
    });
    assert.equal(brief(await router.route(quoted)), `smtp address ${quoted}`);
  }
  {
    // A local part that NFC would change (o + combining diaeresis) does not map either.
    const { router } = setup({ routing: { default: 'smtp' } });
    assert.equal(
      brief(await router.route('jo\u0308hn@x.example')),
      'smtp default jo\u0308hn@x.example',
    );
  }
});

test('invalid addresses carry their NMTP_ERR_ADDR_* code', async () => {
  const { router, dns } = setup({ routing: { default: 'smtp' } });
  const cases: [string, string][] = [
    ['', 'NMTP_ERR_ADDR_EMPTY'],
    ['no-at-sign', 'NMTP_ERR_ADDR_MISSING_AT'],
    ['a@b@c.example', 'NMTP_ERR_ADDR_LEGACY_SYNTAX'],
    ['a b@c.example', 'NMTP_ERR_ADDR_LEGACY_SYNTAX'],
    ['"unterminated@c.example', 'NMTP_ERR_ADDR_LEGACY_SYNTAX'],
    ['a@[192.0.2.1]', 'NMTP_ERR_ADDR_DOMAIN_LITERAL'],
    ['a@-bad-.example', 'NMTP_ERR_ADDR_DOMAIN_INVALID'],
    ['a@localhost', 'NMTP_ERR_ADDR_DOMAIN_SINGLE_LABEL'],
    ['a@example.123', 'NMTP_ERR_ADDR_DOMAIN_NUMERIC_TLD'],
    ['a@example.org.', 'NMTP_ERR_ADDR_DOMAIN_TRAILING_DOT'],
    // Unmappable local part, but the domain is bad too: the domain's code.
    ['"john smith"@bad..example', 'NMTP_ERR_ADDR_DOMAIN_INVALID'],
    // §20.7.3: "A gateway MUST refuse an address whose domain is minimally restrictive".
    ['a@p\u0430ypal.com', 'NMTP_ERR_ADDR_HOMOGRAPH_REFUSED'],
    ['"john smith"@p\u0430ypal.com', 'NMTP_ERR_ADDR_HOMOGRAPH_REFUSED'],
  ];
  for (const [input, code] of cases) {
    const d = await router.route(input);
    assert.equal(brief(d), `invalid ${code}`, JSON.stringify(input));
    assert.equal(d.address, input);
    assert.equal(d.why.split(code).length, 2, `the code once: ${d.why}`);
  }
  assert.deepEqual(dns.asked, []);
});

test('a receiver that is not enabled does not claim its domains', async () => {
  const { router } = setup({ nmtp: { receiver: { enabled: false, domains: ['own.example'] } } });
  assert.equal(brief(await router.route('a@own.example')), 'smtp dns-none a@own.example');
});

test('the cache seen through the router: the TTL counts down, a changed record shows after it', async () => {
  const { router, dns, clock } = setup({}, { [srvOf('example.org')]: ok(300) });
  assert.match((await router.route('a@example.org')).why, /\(ttl 300\)$/);
  dns.answers[srvOf('example.org')] = { status: 'none' };
  clock.advance(100_000);
  assert.match((await router.route('b@example.org')).why, /\(ttl 200, cached\)$/);
  clock.advance(200_000);
  const d = await router.route('c@example.org');
  assert.equal(brief(d), 'smtp dns-none c@example.org');
  assert.equal(dns.asked.length, 2);
});

test('configuration keys that are not domains or addresses fail at start-up', () => {
  const bad: [object, RegExp][] = [
    [{ routing: { domains: { 'bad..example': 'nmtp' } } }, /routing\.domains\["bad\.\.example"\]/],
    [{ routing: { domains: { localhost: 'smtp' } } }, /SINGLE_LABEL/],
    [
      { routing: { addresses: { 'not an address': 'smtp' } } },
      /routing\.addresses\["not an address"\]/,
    ],
    [{ routing: { addresses: { '"john smith"@x.example': 'nmtp' } } }, /cannot be routed to nmtp/],
    [{ routing: { domains: { 'Example.org': 'nmtp', 'example.ORG': 'smtp' } } }, /contradicts/],
    [
      { routing: { domains: { 'bücher.example': 'nmtp', 'xn--bcher-kva.example': 'smtp' } } },
      /contradicts/,
    ],
    [{ nmtp: { receiver: { domains: ['-x-.example'] } } }, /nmtp\.receiver\.domains\[0\]/],
    [
      { routing: { staticRecords: { srv: [{ domain: 'a..b', target: 't', port: 1 }] } } },
      /staticRecords\.srv\[0\]/,
    ],
  ];
  for (const [doc, message] of bad) {
    assert.throws(
      () => createRouter({ config: validateConfig(doc) }),
      (e: Error & { code?: string }) =>
        e.code === 'NMTP_ERR_GW_CONFIG_INVALID' && message.test(e.message),
      JSON.stringify(doc),
    );
  }
  // Two spellings of one key with the same value are fine; NMTP-only local syntax too.
  createRouter({
    config: validateConfig({
      routing: {
        domains: { 'Example.org': 'nmtp', 'example.org': 'nmtp' },
        addresses: { 'a(b)@x.example': 'nmtp' },
      },
    }),
  });
});

test('an NMTP-syntax address key (unquoted "(") matches its quoted legacy form', async () => {
  const { router } = setup({
    routing: { default: 'smtp', addresses: { 'a(b)@x.example': 'nmtp' } },
  });
  assert.equal(brief(await router.route('"a(b)"@x.example')), 'nmtp address a(b)@x.example');
});

// ---- nmtp-gateway route ----

async function run(
  config: GatewayConfig,
  addresses: string[],
  answers: Record<string, SrvQueryResult>,
) {
  const lines: string[] = [];
  const dns = fakeDns(answers);
  const srv = createSrvLookup(config.routing, { now: () => 0, query: dns.query });
  const code = await routeCommand(config, addresses, (l) => lines.push(l), { srv });
  return { code, lines };
}

test('route command: one tab-separated line per address; exit 0 when all are routed', async () => {
  const config = validateConfig({ routing: { domains: { 'legacy.example': 'smtp' } } });
  const { code, lines } = await run(config, ['Alice@Example.org', 'bob@legacy.example'], {
    [srvOf('example.org')]: ok(300),
  });
  assert.equal(code, 0);
  assert.deepEqual(lines, [
    'Alice@Example.org\tnmtp\tdns-srv\tdns-srv: _nmtp-transfer._tcp.example.org → mx.example.org:4025 (ttl 300); as Alice@example.org',
    'bob@legacy.example\tsmtp\tdomain\tdomain: routing.domains["legacy.example"] = smtp',
  ]);
});

test('route command: 65 when one is invalid (even with a temperror), 75 on temperror alone', async () => {
  const config = validateConfig({});
  const fail = { [srvOf('down.example')]: { status: 'temperror', detail: 'timeout' } as const };
  const t = await run(config, ['a@down.example', 'b@ok.example'], fail);
  assert.equal(t.code, 75);
  assert.match(t.lines[0]!, /^a@down\.example\ttemperror\t-\tdns-temperror: /);
  assert.match(t.lines[1]!, /^b@ok\.example\tsmtp\tdns-none\t/);
  const i = await run(config, ['a@down.example', 'a@[192.0.2.1]'], fail);
  assert.equal(i.code, 65);
  assert.match(i.lines[1]!, /^a@\[192\.0\.2\.1\]\tinvalid\tNMTP_ERR_ADDR_DOMAIN_LITERAL\t/);
});

test('route command: a tab or line end in an argument cannot break the line format', async () => {
  const { code, lines } = await run(validateConfig({}), ['a\tb@x.example\nforged\tnmtp'], {});
  assert.equal(code, 65);
  assert.equal(lines.length, 1);
  assert.equal(lines[0]!.split('\t').length, 4);
  assert.ok(lines[0]!.startsWith('a\\tb@x.example\\nforged\\tnmtp\tinvalid\t'));
});
