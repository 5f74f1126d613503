/**
 * A small declarative schema (a JSON-Schema subset with `additionalProperties: false`
 * everywhere) that does three jobs from one description: validates a parsed config with
 * messages naming the option path (`routes[2].action.upstream ...`), fills defaults, and
 * declares which leaves may be set from `SLUICE_*` environment variables (the README's
 * table is checked against it by a test).
 *
 * It must never import anything outside src/shared.
 */

interface Common {
  readonly doc: string;
  /** Environment variable that overrides this leaf (global knobs only, never inside arrays/maps). */
  readonly env?: string;
}

export interface IntegerSchema extends Common {
  readonly kind: 'integer';
  readonly min?: number;
  readonly max?: number;
  readonly default?: number;
}
export interface NumberSchema extends Common {
  readonly kind: 'number';
  readonly min?: number;
  readonly max?: number;
  readonly default?: number;
}
export interface StringSchema extends Common {
  readonly kind: 'string';
  readonly enum?: readonly string[];
  readonly pattern?: RegExp;
  readonly patternDoc?: string;
  readonly minLength?: number;
  readonly default?: string;
}
export interface BooleanSchema extends Common {
  readonly kind: 'boolean';
  readonly default?: boolean;
}
export interface ObjectSchema extends Common {
  readonly kind: 'object';
  readonly properties: Readonly<Record<string, Schema>>;
  readonly required?: readonly string[];
  /** Fill an empty object when absent so that nested defaults apply. */
  readonly defaultEmpty?: boolean;
  /** Exactly one of these properties must be present. */
  readonly oneOf?: readonly string[];
}
export interface MapSchema extends Common {
  readonly kind: 'map';
  readonly values: Schema;
  readonly keyPattern?: RegExp;
  readonly keyDoc?: string;
  readonly minEntries?: number;
  /** An absent map is an empty one. */
  readonly defaultEmpty?: boolean;
}
export interface ArraySchema extends Common {
  readonly kind: 'array';
  readonly items: Schema;
  readonly minItems?: number;
  readonly maxItems?: number;
  readonly default?: readonly unknown[];
}
/** Tagged union of objects: the `tag` property selects the variant. */
export interface UnionSchema extends Common {
  readonly kind: 'union';
  readonly tag: string;
  readonly variants: Readonly<Record<string, ObjectSchema>>;
}

export type Schema =
  | IntegerSchema
  | NumberSchema
  | StringSchema
  | BooleanSchema
  | ObjectSchema
  | MapSchema
  | ArraySchema
  | UnionSchema;

// ---------------------------------------------------------------- static types

/**
 * The TypeScript type a schema produces once validated (defaults filled), TypeBox-style:
 * `type X = Static<typeof X_SCHEMA>`. Schemas must keep their literal types for this (declare
 * them `as const satisfies ObjectSchema`, or build them with helpers that return literal
 * types); a value typed only as `Schema` yields `unknown`. A property is present when it is
 * required, has a default, or is an object/map filled empty (exactly when `validate` puts
 * it in the output); otherwise it is optional.
 */
export type Static<S> = S extends { readonly [STATIC]: { readonly type: infer T } }
  ? T
  : S extends { readonly kind: 'integer' | 'number' }
  ? number
  : S extends { readonly kind: 'string'; readonly enum: readonly (infer E)[] }
    ? E
    : S extends { readonly kind: 'string' }
      ? string
      : S extends { readonly kind: 'boolean' }
        ? boolean
        : S extends { readonly kind: 'array'; readonly items: infer I }
          ? readonly Static<I>[]
          : S extends { readonly kind: 'map'; readonly values: infer V }
            ? Readonly<Record<string, Static<V>>>
            : S extends { readonly kind: 'object'; readonly properties: infer P }
              ? StaticObject<P, S extends { readonly required: readonly (infer R)[] } ? R : never>
              : S extends { readonly kind: 'union'; readonly tag: infer T extends string; readonly variants: infer V }
                ? { [K in keyof V]: Flat<{ readonly [_ in T]: K } & Static<V[K]>> }[keyof V]
                : unknown;

/** Type-only: no schema object has this property at run time. */
declare const STATIC: unique symbol;

/**
 * An object schema typed as a plain `ObjectSchema` (what code that walks schemas generically
 * wants) that still carries, for `Static<>`, the type its literal produced and whether
 * validation always fills it.
 */
export type TypedObjectSchema<T, Filled extends boolean> = ObjectSchema & { readonly [STATIC]: { readonly type: T; readonly filled: Filled } };

/** Erases `s`'s literal type down to `TypedObjectSchema`; the value is returned unchanged. */
export function typedObject<const S extends ObjectSchema>(s: S): TypedObjectSchema<Static<S>, S extends { readonly defaultEmpty: true } ? true : false> {
  return s as unknown as TypedObjectSchema<Static<S>, S extends { readonly defaultEmpty: true } ? true : false>;
}

type Flat<T> = { [K in keyof T]: T[K] } & {};

/** Keys of `P` that validation always fills: required ones, and those with a default. */
type PresentKeys<P, R> = {
  [K in keyof P]: K extends R
    ? K
    : P[K] extends { readonly default: unknown } | { readonly defaultEmpty: true } | { readonly [STATIC]: { readonly filled: true } }
      ? K
      : never;
}[keyof P];

type StaticObject<P, R> = Flat<
  { readonly [K in PresentKeys<P, R>]: Static<P[K]> } & { readonly [K in Exclude<keyof P, PresentKeys<P, R>>]?: Static<P[K]> }
>;

export interface SchemaIssue {
  readonly path: string;
  readonly message: string;
}

function joinPath(base: string, key: string): string {
  return base === '' ? key : `${base}.${key}`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'object') return 'an object';
  return String(v);
}

/**
 * Validates `value` against `schema`, returning a new value with defaults filled in.
 * Every problem found is appended to `issues`; the walk continues so that one run reports
 * them all.
 */
export function validate(schema: Schema, value: unknown, path: string, issues: SchemaIssue[]): unknown {
  const fail = (message: string): undefined => {
    issues.push({ path: path === '' ? '(root)' : path, message });
    return undefined;
  };
  switch (schema.kind) {
    case 'integer':
    case 'number': {
      const v = value ?? schema.default;
      if (v === undefined) return fail('is required');
      if (typeof v !== 'number' || !Number.isFinite(v)) return fail(`must be a number, got ${describe(v)}`);
      if (schema.kind === 'integer' && !Number.isInteger(v)) return fail(`must be an integer, got ${v}`);
      if (schema.min !== undefined && v < schema.min) return fail(`must be >= ${schema.min}, got ${v}`);
      if (schema.max !== undefined && v > schema.max) return fail(`must be <= ${schema.max}, got ${v}`);
      return v;
    }
    case 'string': {
      const v = value ?? schema.default;
      if (v === undefined) return fail('is required');
      if (typeof v !== 'string' || (schema.enum !== undefined && !schema.enum.includes(v))) {
        if (schema.enum === undefined) return fail(`must be a string, got ${describe(v)}`);
        return fail(`must be one of ${schema.enum.join(', ')}, got ${describe(v)}`);
      }
      if (schema.minLength !== undefined && v.length < schema.minLength) {
        return fail(`must be at least ${schema.minLength} characters long`);
      }
      if (schema.pattern !== undefined && !schema.pattern.test(v)) {
        return fail(`must be ${schema.patternDoc ?? `a string matching ${schema.pattern}`}, got ${describe(v)}`);
      }
      return v;
    }
    case 'boolean': {
      const v = value ?? schema.default;
      if (v === undefined) return fail('is required');
      if (typeof v !== 'boolean') return fail(`must be true or false, got ${describe(v)}`);
      return v;
    }
    case 'object': {
      const v = value ?? (schema.defaultEmpty === true ? {} : undefined);
      if (v === undefined) return fail('is required');
      if (!isPlainObject(v)) return fail(`must be an object, got ${describe(v)}`);
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(v)) {
        if (!Object.hasOwn(schema.properties, key)) {
          issues.push({
            path: joinPath(path, key),
            message: `is not a known option (known here: ${Object.keys(schema.properties).join(', ')})`,
          });
        }
      }
      if (schema.oneOf !== undefined) {
        const present = schema.oneOf.filter((k) => v[k] !== undefined);
        if (present.length !== 1) {
          fail(`must set exactly one of ${schema.oneOf.join(', ')}${present.length > 1 ? ` (got ${present.join(', ')})` : ''}`);
        }
      }
      for (const [key, sub] of Object.entries(schema.properties)) {
        const raw = v[key];
        const required = schema.required?.includes(key) === true;
        if (raw === undefined && !required && !hasDefault(sub)) continue;
        const r = validate(sub, raw, joinPath(path, key), issues);
        if (r !== undefined) out[key] = r;
      }
      return out;
    }
    case 'map': {
      const v = value ?? (schema.defaultEmpty === true ? {} : undefined);
      if (v === undefined) return fail('is required');
      if (!isPlainObject(v)) return fail(`must be an object of named entries, got ${describe(v)}`);
      const out: Record<string, unknown> = {};
      const keys = Object.keys(v);
      if (schema.minEntries !== undefined && keys.length < schema.minEntries) {
        fail(`must have at least ${schema.minEntries} entr${schema.minEntries === 1 ? 'y' : 'ies'}`);
      }
      for (const key of keys) {
        if (schema.keyPattern !== undefined && !schema.keyPattern.test(key)) {
          issues.push({ path: joinPath(path, key), message: `is not a valid name (${schema.keyDoc ?? String(schema.keyPattern)})` });
          continue;
        }
        const r = validate(schema.values, v[key], joinPath(path, key), issues);
        if (r !== undefined) out[key] = r;
      }
      return out;
    }
    case 'array': {
      const v = value ?? (schema.default === undefined ? undefined : [...schema.default]);
      if (v === undefined) return fail('is required');
      if (!Array.isArray(v)) return fail(`must be an array, got ${describe(v)}`);
      if (schema.minItems !== undefined && v.length < schema.minItems) fail(`must have at least ${schema.minItems} item(s)`);
      if (schema.maxItems !== undefined && v.length > schema.maxItems) fail(`must have at most ${schema.maxItems} item(s)`);
      return v.map((item, i) => validate(schema.items, item, `${path}[${i}]`, issues));
    }
    case 'union': {
      const v = value;
      if (v === undefined) return fail('is required');
      if (!isPlainObject(v)) return fail(`must be an object, got ${describe(v)}`);
      const tag = v[schema.tag];
      const names = Object.keys(schema.variants);
      if (typeof tag !== 'string' || !Object.hasOwn(schema.variants, tag)) {
        issues.push({ path: joinPath(path, schema.tag), message: `must be one of ${names.join(', ')}, got ${describe(tag)}` });
        return undefined;
      }
      const variant = schema.variants[tag] as ObjectSchema;
      const rest: Record<string, unknown> = { ...v };
      delete rest[schema.tag];
      const r = validate(variant, rest, path, issues) as Record<string, unknown> | undefined;
      return r === undefined ? undefined : { [schema.tag]: tag, ...r };
    }
  }
}

function hasDefault(s: Schema): boolean {
  switch (s.kind) {
    case 'integer':
    case 'number':
    case 'string':
    case 'boolean':
    case 'array':
      return s.default !== undefined;
    case 'object':
    case 'map':
      return s.defaultEmpty === true;
    default:
      return false;
  }
}

export interface EnvVar {
  readonly name: string;
  readonly path: readonly string[];
  readonly schema: Schema;
}

/** Every leaf that declares an environment variable, with its path from the root. */
export function envVars(schema: Schema, path: readonly string[] = []): EnvVar[] {
  const out: EnvVar[] = [];
  if (schema.env !== undefined) out.push({ name: schema.env, path, schema });
  if (schema.kind === 'object') {
    for (const [k, sub] of Object.entries(schema.properties)) out.push(...envVars(sub, [...path, k]));
  }
  return out;
}

/** Parses an environment variable's text for its leaf schema; throws a message on bad input. */
export function parseEnvValue(v: EnvVar, text: string): unknown {
  const s = v.schema;
  switch (s.kind) {
    case 'integer':
    case 'number': {
      const t = text.trim();
      if (!/^-?\d+(\.\d+)?$/.test(t)) throw new Error(`${v.name} must be a number, got ${JSON.stringify(text)}`);
      return Number(t);
    }
    case 'boolean': {
      const t = text.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(t)) return true;
      if (['0', 'false', 'no', 'off'].includes(t)) return false;
      throw new Error(`${v.name} must be true or false, got ${JSON.stringify(text)}`);
    }
    case 'string':
      return text;
    default:
      throw new Error(`${v.name} cannot be set from the environment`);
  }
}

/** A short human description of a leaf's type, default and range, for the README table. */
export function describeLeaf(s: Schema): { type: string; default: string } {
  switch (s.kind) {
    case 'integer':
    case 'number': {
      const range = s.min !== undefined || s.max !== undefined ? ` ${s.min ?? ''}..${s.max ?? ''}` : '';
      return { type: `${s.kind}${range}`, default: s.default === undefined ? '' : String(s.default) };
    }
    case 'string':
      return { type: s.enum ? s.enum.join(' \\| ') : 'string', default: s.default ?? '' };
    case 'boolean':
      return { type: 'boolean', default: s.default === undefined ? '' : String(s.default) };
    default:
      return { type: s.kind, default: '' };
  }
}

export function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  }
  return v;
}
