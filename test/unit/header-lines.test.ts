/**
 * HeaderLines: the text of every line is the name and value asked for, in both shapes; a
 * repeated line is the same string (made once); a line that takes another's slot replaces it
 * without ever answering for it; long values are rendered and not kept.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HeaderLines } from '../../src/workers/header-lines';

/** A string equal to `s` but not the same object (as uWS makes a new one per request). */
function fresh(s: string): string {
  return s.split('').join('');
}

describe('HeaderLines', () => {
  test('renders name: value CRLF, or CRLF name: value for the writeStatus block', () => {
    assert.equal(new HeaderLines(false).line('x-forwarded-for', '10.0.0.1'), 'x-forwarded-for: 10.0.0.1\r\n');
    assert.equal(new HeaderLines(true).line('via', '1.1 sluice'), '\r\nvia: 1.1 sluice');
    assert.equal(new HeaderLines(false).line('x-empty', ''), 'x-empty: \r\n');
  });

  test('a line asked for again with equal strings is the string made the first time', () => {
    const lines = new HeaderLines(false);
    const first = lines.line('host', 'api.example:8080');
    assert.equal(lines.rendered, 1);
    assert.equal(lines.line(fresh('host'), fresh('api.example:8080')), first);
    assert.equal(lines.line('host', 'api.example:8080'), first);
    assert.equal(lines.rendered, 1);
  });

  test('never answers with another name or value, whatever shares its slot', () => {
    const lines = new HeaderLines(false);
    // Many lines of equal lengths and first characters: they share slots and replace each other.
    const names = ['x-aa', 'x-ab', 'x-ba', 'y-aa'];
    const values = ['v-1', 'v-2', 'w-1', 'v-3', 'V-1'];
    for (let round = 0; round < 3; round++) {
      for (const n of names) {
        for (const v of values) assert.equal(lines.line(fresh(n), fresh(v)), `${n}: ${v}\r\n`);
      }
    }
    // Case matters: the cache compares exact strings.
    assert.equal(lines.line('X-AA', 'v-1'), 'X-AA: v-1\r\n');
    assert.equal(lines.line('x-aa', 'V-1'), 'x-aa: V-1\r\n');
  });

  test('request ids: each line is right, and the lines around them stay kept', () => {
    const lines = new HeaderLines(false);
    const via = lines.line('via', '1.1 sluice');
    const xff = lines.line('x-forwarded-for', '127.0.0.1');
    for (let i = 0; i < 1000; i++) {
      const id = `0c6b1e2a-5f3d-4b7c-9a1e-${i.toString(16).padStart(12, '0')}`;
      assert.equal(lines.line('x-request-id', id), `x-request-id: ${id}\r\n`);
    }
    assert.equal(lines.rendered, 1002);
    assert.equal(lines.line('via', fresh('1.1 sluice')), via);
    assert.equal(lines.line('x-forwarded-for', fresh('127.0.0.1')), xff);
    assert.equal(lines.rendered, 1002, 'the ids kept to one slot: Via and X-Forwarded-For were still there');
  });

  test('values over 256 characters are rendered every time, not kept', () => {
    const lines = new HeaderLines(false);
    const long = 'c'.repeat(300);
    assert.equal(lines.line('cookie', long), `cookie: ${long}\r\n`);
    assert.equal(lines.line('cookie', long), `cookie: ${long}\r\n`);
    assert.equal(lines.rendered, 2);
    const short = 'c'.repeat(256);
    assert.equal(lines.line('cookie', short), `cookie: ${short}\r\n`);
    assert.equal(lines.line('cookie', short), `cookie: ${short}\r\n`);
    assert.equal(lines.rendered, 3);
  });
});
