/**
 * JsonBytes (src/shared/json-bytes.ts) writes the JSON of request events in JavaScript; its
 * bytes must be exactly JSON.stringify's text, whatever the strings hold.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JsonBytes } from '../../src/shared/json-bytes';
import { NASTY } from '../helpers';

test('JsonBytes.str writes what JSON.stringify writes, for ASCII, escapes, non-ASCII and lone surrogates', () => {
  const j = new JsonBytes(8); // small: the buffer has to grow
  for (const s of [...NASTY, 'x'.repeat(5000), '"'.repeat(3000)]) {
    j.reset();
    j.str(s);
    assert.equal(j.view().toString('utf8'), JSON.stringify(s), JSON.stringify(s).slice(0, 80));
  }
  j.reset();
  j.raw('[');
  j.num(0);
  j.raw(',');
  j.num(-1.5);
  j.raw(',');
  j.num(1e21);
  j.raw(',');
  j.num(Number.NaN);
  j.raw(',');
  j.strOrNull(null);
  j.raw(',');
  j.strArray(['a', 'b"']);
  j.raw(']');
  assert.equal(j.view().toString(), JSON.stringify([0, -1.5, 1e21, Number.NaN, null, ['a', 'b"']]));
});

test('JsonBytes.int and .milli write what JSON.stringify writes for integers and k / 1000', () => {
  const j = new JsonBytes(4);
  const ints = [0, 1, 9, 10, 99, 100, -1, -10, 2 ** 31, Date.now(), Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER];
  const ks = [0, 1, 5, 10, 100, 999, 1000, 1001, 1010, 1100, 12345, -1, -5, -1000, -1234, 10 ** 14 + 7, 10 ** 15 + 3];
  for (let i = 0; i < 2000; i++) {
    ints.push(Math.floor(Math.random() * 2 ** (1 + (i % 53))) * (i % 3 === 0 ? -1 : 1));
    ks.push(Math.round(Math.random() * 10 ** (1 + (i % 12)) * (i % 5 === 0 ? -1 : 1)));
  }
  for (const v of ints) {
    j.reset();
    j.int(v);
    assert.equal(j.view().toString(), JSON.stringify(v));
    j.reset();
    j.num(v);
    assert.equal(j.view().toString(), JSON.stringify(v));
  }
  for (const k of ks) {
    j.reset();
    j.milli(k);
    assert.equal(j.view().toString(), JSON.stringify(k / 1000), `k = ${k}`);
  }
});
