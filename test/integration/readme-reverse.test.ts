/**
 * The README's reverse walk-through ("The other way: an NMTP message to a legacy (Postfix)
 * user"), run exactly as written (the lines between its reverse markers, through bash from
 * the repository's root), only with ephemeral ports in place of the ones it names: an NMTP
 * sender's message reaches the sink through the gateway (250 in the session), then, with the
 * sink down, a cookie that turns accepted once the sink is back and the queue retried. A
 * README change that breaks the walk-through fails here.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readmeSection } from '../support/readme.ts';

const walk = readmeSection('reverse');
after(() => walk.cleanup());

test("the README's reverse walk-through: NMTP in, SMTP out, a cookie that turns accepted", async () => {
  const { out, err, code } = await walk.run({ ports: ['2525', '2526', '4025', '9465'] });
  assert.equal(code, 0, `${out}\n${err}`);
  assert.match(out, /^alice@legacy\.nmtp\.test 250 2\.0\.0 .*id=r[a-z2-7]{26}$/m, out);
  assert.match(out, /^Received: from sender\.example \(\[127\.0\.0\.1\]\)$/m, out);
  assert.match(out, /^Authentication-Results: localhost; nmtp=pass header\.d=sender\.example$/m);
  assert.match(out, /^alice@legacy\.nmtp\.test 350 2\.0\.0 .*cookie=gw-/m, out);
  assert.match(out, /state=accepted id=r[a-z2-7]{26}/, out);
});
