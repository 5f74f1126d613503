/**
 * The generic schema walker (src/shared/schema.ts) on small hand-written schemas: messages
 * name the path, every issue of one walk is collected, defaults are filled, environment
 * leaves are found and parsed, deepFreeze reaches every level.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  deepFreeze,
  describeLeaf,
  envVars,
  parseEnvValue,
  validate,
  type ObjectSchema,
  type Schema,
  type SchemaIssue,
} from '../../src/shared/schema';

function run(schema: Schema, value: unknown, path = ''): { out: unknown; issues: SchemaIssue[] } {
  const issues: SchemaIssue[] = [];
  const out = validate(schema, value, path, issues);
  return { out, issues };
}

/** Issues as "path message" lines, the form ConfigError prints. */
function lines(issues: readonly SchemaIssue[]): string[] {
  return issues.map((i) => `${i.path} ${i.message}`);
}

const INT: Schema = { kind: 'integer', min: 1, max: 10, doc: 'n' };
const NUM: Schema = { kind: 'number', min: 0.5, max: 2.5, doc: 'x' };

describe('validate: integer and number', () => {
  test('accepts values in range, bounds inclusive', () => {
    for (const v of [1, 5, 10]) assert.deepEqual(run(INT, v, 'n'), { out: v, issues: [] });
    for (const v of [0.5, 1.25, 2.5]) assert.deepEqual(run(NUM, v, 'x'), { out: v, issues: [] });
  });

  test('min and max name the path and the bound', () => {
    assert.deepEqual(lines(run(INT, 0, 'a.n').issues), ['a.n must be >= 1, got 0']);
    assert.deepEqual(lines(run(INT, 11, 'a.n').issues), ['a.n must be <= 10, got 11']);
    assert.deepEqual(lines(run(NUM, 0.25, 'x').issues), ['x must be >= 0.5, got 0.25']);
    assert.deepEqual(lines(run(NUM, 3, 'x').issues), ['x must be <= 2.5, got 3']);
  });

  test('integer refuses fractions, number accepts them', () => {
    assert.deepEqual(lines(run(INT, 2.5, 'n').issues), ['n must be an integer, got 2.5']);
    assert.deepEqual(run(NUM, 1.5, 'x').issues, []);
  });

  test('wrong types and non-finite numbers', () => {
    assert.deepEqual(lines(run(INT, '5', 'n').issues), ['n must be a number, got "5"']);
    assert.deepEqual(lines(run(INT, true, 'n').issues), ['n must be a number, got true']);
    assert.deepEqual(lines(run(INT, null, 'n').issues), ['n is required']);
    assert.deepEqual(lines(run(INT, [1], 'n').issues), ['n must be a number, got an array']);
    assert.deepEqual(lines(run(INT, { a: 1 }, 'n').issues), ['n must be a number, got an object']);
    assert.deepEqual(lines(run(NUM, Infinity, 'x').issues), ['x must be a number, got Infinity']);
    assert.deepEqual(lines(run(NUM, NaN, 'x').issues), ['x must be a number, got NaN']);
  });

  test('long strings are shortened in messages', () => {
    const long = 'y'.repeat(100);
    assert.deepEqual(lines(run(INT, long, 'n').issues), [`n must be a number, got "${'y'.repeat(40)}…"`]);
  });

  test('missing without default is required; default fills', () => {
    assert.deepEqual(lines(run(INT, undefined, 'n').issues), ['n is required']);
    assert.deepEqual(run({ kind: 'integer', default: 7, doc: '' }, undefined, 'n'), { out: 7, issues: [] });
  });

  test('an issue at the root is reported as (root)', () => {
    assert.deepEqual(lines(run(INT, 'x').issues), ['(root) must be a number, got "x"']);
  });
});

describe('validate: string and boolean', () => {
  const S: Schema = { kind: 'string', enum: ['a', 'b'], doc: '' };
  test('enum lists the allowed values', () => {
    assert.deepEqual(run(S, 'b', 's').out, 'b');
    assert.deepEqual(lines(run(S, 'c', 's').issues), ['s must be one of a, b, got "c"']);
  });

  test('pattern uses patternDoc, or the regex when there is none', () => {
    const withDoc: Schema = { kind: 'string', pattern: /^\//, patternDoc: 'a path', doc: '' };
    const noDoc: Schema = { kind: 'string', pattern: /^x+$/, doc: '' };
    assert.deepEqual(lines(run(withDoc, 'api', 'p').issues), ['p must be a path, got "api"']);
    assert.deepEqual(lines(run(noDoc, 'y', 'p').issues), ['p must be a string matching /^x+$/, got "y"']);
    assert.deepEqual(run(noDoc, 'xx', 'p').issues, []);
  });

  test('minLength', () => {
    const s: Schema = { kind: 'string', minLength: 2, doc: '' };
    assert.deepEqual(lines(run(s, 'a', 'p').issues), ['p must be at least 2 characters long']);
    assert.deepEqual(run(s, 'ab', 'p').issues, []);
  });

  test('wrong type', () => {
    assert.deepEqual(lines(run(S, 1, 's').issues), ['s must be one of a, b, got 1']);
  });

  test('boolean accepts only true/false', () => {
    const B: Schema = { kind: 'boolean', doc: '' };
    assert.equal(run(B, false, 'b').out, false);
    assert.deepEqual(lines(run(B, 'true', 'b').issues), ['b must be true or false, got "true"']);
    assert.deepEqual(lines(run(B, 0, 'b').issues), ['b must be true or false, got 0']);
    assert.equal(run({ kind: 'boolean', default: true, doc: '' }, undefined, 'b').out, true);
  });
});

describe('validate: object', () => {
  const O: ObjectSchema = {
    kind: 'object',
    doc: '',
    required: ['name'],
    properties: {
      name: { kind: 'string', doc: '' },
      port: { kind: 'integer', default: 80, doc: '' },
      opt: { kind: 'integer', doc: '' },
      inner: { kind: 'object', defaultEmpty: true, doc: '', properties: { x: { kind: 'integer', default: 1, doc: '' } } },
      noEmpty: { kind: 'object', doc: '', properties: { y: { kind: 'integer', default: 2, doc: '' } } },
    },
  };

  test('fills defaults, nested through defaultEmpty objects, leaves optional keys absent', () => {
    const { out, issues } = run(O, { name: 'n' }, 'o');
    assert.deepEqual(issues, []);
    assert.deepEqual(out, { name: 'n', port: 80, inner: { x: 1 } });
    assert.equal(Object.prototype.hasOwnProperty.call(out, 'opt'), false);
    assert.equal(Object.prototype.hasOwnProperty.call(out, 'noEmpty'), false);
  });

  test('an optional object without defaultEmpty gets its defaults when present', () => {
    assert.deepEqual(run(O, { name: 'n', noEmpty: {} }).out, { name: 'n', port: 80, inner: { x: 1 }, noEmpty: { y: 2 } });
  });

  test('returns a new object (input untouched)', () => {
    const input = { name: 'n' };
    const { out } = run(O, input);
    assert.notEqual(out, input);
    assert.deepEqual(input, { name: 'n' });
  });

  test('unknown keys are reported with the keys known at that level', () => {
    assert.deepEqual(lines(run(O, { name: 'n', nmae: 1 }, 'o').issues), [
      'o.nmae is not a known option (known here: name, port, opt, inner, noEmpty)',
    ]);
    assert.deepEqual(lines(run(O, { name: 'n', inner: { z: 1 } }, 'o').issues), ['o.inner.z is not a known option (known here: x)']);
  });

  test('unknown key at the root has no leading dot', () => {
    assert.deepEqual(lines(run(O, { name: 'n', bogus: 1 }).issues), ['bogus is not a known option (known here: name, port, opt, inner, noEmpty)']);
  });

  test(
    'unknown keys that are Object.prototype names are reported too',
    () => {
      for (const key of ['constructor', 'toString', 'hasOwnProperty']) {
        const { issues } = run(O, { name: 'n', [key]: 1 }, 'o');
        assert.deepEqual(lines(issues), [`o.${key} is not a known option (known here: name, port, opt, inner, noEmpty)`], key);
      }
    },
  );

  test('required and wrong type', () => {
    assert.deepEqual(lines(run(O, {}, 'o').issues), ['o.name is required']);
    assert.deepEqual(lines(run(O, [], 'o').issues), ['o must be an object, got an array']);
    assert.deepEqual(lines(run(O, null, 'o').issues), ['o is required']);
    assert.deepEqual(lines(run(O, 'x', 'o').issues), ['o must be an object, got "x"']);
  });

  test('every issue of one walk is collected, in document order', () => {
    const { issues } = run(O, { name: 5, port: 'x', opt: 1.5, inner: { x: -1.5, q: 1 }, zz: 0 }, 'o');
    assert.deepEqual(lines(issues), [
      'o.zz is not a known option (known here: name, port, opt, inner, noEmpty)',
      'o.name must be a string, got 5',
      'o.port must be a number, got "x"',
      'o.opt must be an integer, got 1.5',
      'o.inner.q is not a known option (known here: x)',
      'o.inner.x must be an integer, got -1.5',
    ]);
  });

  test('oneOf: exactly one must be present', () => {
    const P: ObjectSchema = {
      kind: 'object',
      doc: '',
      oneOf: ['a', 'b', 'c'],
      properties: { a: { kind: 'string', doc: '' }, b: { kind: 'string', doc: '' }, c: { kind: 'boolean', doc: '' } },
    };
    assert.deepEqual(run(P, { b: 'x' }, 'p').issues, []);
    assert.deepEqual(run(P, { c: false }, 'p').issues, [], 'false counts as present');
    assert.deepEqual(lines(run(P, {}, 'p').issues), ['p must set exactly one of a, b, c']);
    assert.deepEqual(lines(run(P, { a: 'x', c: true }, 'p').issues), ['p must set exactly one of a, b, c (got a, c)']);
  });
});

describe('validate: map, array, union', () => {
  const M: Schema = {
    kind: 'map',
    doc: '',
    keyPattern: /^[a-z]+$/,
    keyDoc: 'lower-case letters',
    minEntries: 1,
    values: { kind: 'integer', min: 0, doc: '' },
  };

  test('map validates keys and values', () => {
    assert.deepEqual(run(M, { a: 1, b: 2 }, 'm'), { out: { a: 1, b: 2 }, issues: [] });
    assert.deepEqual(lines(run(M, { A: 1, b: -1 }, 'm').issues), ['m.A is not a valid name (lower-case letters)', 'm.b must be >= 0, got -1']);
    assert.deepEqual(lines(run(M, {}, 'm').issues), ['m must have at least 1 entry']);
    assert.deepEqual(lines(run({ ...M, minEntries: 2 } as Schema, { a: 1 }, 'm').issues), ['m must have at least 2 entries']);
    assert.deepEqual(lines(run(M, [1], 'm').issues), ['m must be an object of named entries, got an array']);
    assert.deepEqual(lines(run(M, undefined, 'm').issues), ['m is required']);
  });

  const A: Schema = { kind: 'array', minItems: 1, maxItems: 2, doc: '', items: { kind: 'integer', min: 0, doc: '' } };

  test('array items are indexed in paths', () => {
    assert.deepEqual(run(A, [1, 2], 'l'), { out: [1, 2], issues: [] });
    assert.deepEqual(lines(run(A, [1, -1], 'l').issues), ['l[1] must be >= 0, got -1']);
    assert.deepEqual(lines(run(A, [], 'l').issues), ['l must have at least 1 item(s)']);
    assert.deepEqual(lines(run(A, [1, 2, -3], 'l').issues), ['l must have at most 2 item(s)', 'l[2] must be >= 0, got -3']);
    assert.deepEqual(lines(run(A, 'x', 'l').issues), ['l must be an array, got "x"']);
  });

  const U: Schema = {
    kind: 'union',
    tag: 'type',
    doc: '',
    variants: {
      one: { kind: 'object', doc: '', required: ['n'], properties: { n: { kind: 'integer', doc: '' } } },
      two: { kind: 'object', doc: '', properties: { s: { kind: 'string', default: 'd', doc: '' } } },
    },
  };

  test('union picks the variant by tag and keeps the tag first', () => {
    const one = run(U, { type: 'one', n: 3 }, 'u');
    assert.deepEqual(one, { out: { type: 'one', n: 3 }, issues: [] });
    assert.deepEqual(Object.keys(one.out as object), ['type', 'n']);
    assert.deepEqual(run(U, { type: 'two' }, 'u').out, { type: 'two', s: 'd' });
  });

  test('union errors: unknown tag, missing tag, variant errors at the union path', () => {
    assert.deepEqual(lines(run(U, { type: 'three' }, 'u').issues), ['u.type must be one of one, two, got "three"']);
    assert.deepEqual(lines(run(U, {}, 'u').issues), ['u.type must be one of one, two, got undefined']);
    assert.deepEqual(lines(run(U, { type: 'one' }, 'u').issues), ['u.n is required']);
    assert.deepEqual(lines(run(U, { type: 'one', n: 1, x: 1 }, 'u').issues), ['u.x is not a known option (known here: n)']);
    assert.deepEqual(lines(run(U, 3, 'u').issues), ['u must be an object, got 3']);
  });

  test(
    'a tag naming an Object.prototype member is refused like any unknown tag',
    () => {
      const { out, issues } = run(U, { type: 'constructor' }, 'u');
      assert.deepEqual(lines(issues), ['u.type must be one of one, two, got "constructor"']);
      assert.equal(out, undefined);
    },
  );
});

describe('envVars, parseEnvValue, describeLeaf', () => {
  const ROOT: ObjectSchema = {
    kind: 'object',
    doc: '',
    properties: {
      n: { kind: 'integer', env: 'T_N', doc: '' },
      sub: {
        kind: 'object',
        doc: '',
        properties: { b: { kind: 'boolean', env: 'T_B', doc: '' }, s: { kind: 'string', env: 'T_S', doc: '' }, none: { kind: 'integer', doc: '' } },
      },
      m: { kind: 'map', env: 'T_M', doc: '', values: { kind: 'string', env: 'T_NEVER', doc: '' } },
    },
  };

  test('lists env leaves with their paths, not descending into maps', () => {
    const vs = envVars(ROOT);
    assert.deepEqual(
      vs.map((v) => [v.name, v.path.join('.')]),
      [
        ['T_N', 'n'],
        ['T_B', 'sub.b'],
        ['T_S', 'sub.s'],
        ['T_M', 'm'],
      ],
    );
  });

  const byName = (name: string) => {
    const v = envVars(ROOT).find((e) => e.name === name);
    assert.ok(v, name);
    return v;
  };

  test('numbers', () => {
    const v = byName('T_N');
    assert.equal(parseEnvValue(v, '42'), 42);
    assert.equal(parseEnvValue(v, ' -3 '), -3);
    assert.equal(parseEnvValue(v, '1.5'), 1.5);
    for (const bad of ['abc', '1e3', '0x10', '', '1.', '.5', '5px']) {
      assert.throws(() => parseEnvValue(v, bad), { message: `T_N must be a number, got ${JSON.stringify(bad)}` }, bad);
    }
  });

  test('booleans', () => {
    const v = byName('T_B');
    for (const t of ['1', 'true', 'YES', ' on ']) assert.equal(parseEnvValue(v, t), true, t);
    for (const f of ['0', 'False', 'no', 'off']) assert.equal(parseEnvValue(v, f), false, f);
    assert.throws(() => parseEnvValue(v, 'maybe'), { message: 'T_B must be true or false, got "maybe"' });
  });

  test('strings pass through untrimmed; other kinds cannot be set', () => {
    assert.equal(parseEnvValue(byName('T_S'), ' x '), ' x ');
    assert.throws(() => parseEnvValue(byName('T_M'), '{}'), { message: 'T_M cannot be set from the environment' });
  });

  test('describeLeaf', () => {
    assert.deepEqual(describeLeaf({ kind: 'integer', min: 0, max: 9, default: 3, doc: '' }), { type: 'integer 0..9', default: '3' });
    assert.deepEqual(describeLeaf({ kind: 'number', min: 1, doc: '' }), { type: 'number 1..', default: '' });
    assert.deepEqual(describeLeaf({ kind: 'integer', doc: '' }), { type: 'integer', default: '' });
    assert.deepEqual(describeLeaf({ kind: 'string', enum: ['a', 'b'], default: 'a', doc: '' }), { type: 'a \\| b', default: 'a' });
    assert.deepEqual(describeLeaf({ kind: 'string', doc: '' }), { type: 'string', default: '' });
    assert.deepEqual(describeLeaf({ kind: 'boolean', default: false, doc: '' }), { type: 'boolean', default: 'false' });
    assert.deepEqual(describeLeaf(ROOT), { type: 'object', default: '' });
  });
});

describe('deepFreeze', () => {
  test('freezes every level and returns the same value', () => {
    const v = { a: { b: [{ c: 1 }], d: 'x' }, e: [1, [2]] };
    const r = deepFreeze(v);
    assert.equal(r, v);
    assert.ok(Object.isFrozen(v));
    assert.ok(Object.isFrozen(v.a));
    assert.ok(Object.isFrozen(v.a.b));
    assert.ok(Object.isFrozen(v.a.b[0]));
    assert.ok(Object.isFrozen(v.e));
    assert.ok(Object.isFrozen(v.e[1]));
    assert.throws(() => {
      (v.a.b[0] as { c: number }).c = 2;
    }, TypeError);
  });

  test('primitives and null are returned as is', () => {
    assert.equal(deepFreeze(3), 3);
    assert.equal(deepFreeze(null), null);
    assert.equal(deepFreeze('s'), 's');
  });
});
