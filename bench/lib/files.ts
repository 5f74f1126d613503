/**
 * Where things are (repo root, templates, results) and template filling for the baseline
 * configs. Compiled code runs from dist/bench/…, templates stay in bench/… of the repo.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The repository root: the nearest ancestor of this file holding package.json and bench/. */
export function repoRoot(): string {
  for (const start of [__dirname, process.cwd()]) {
    let dir = start;
    for (;;) {
      if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'bench', 'baselines'))) return dir;
      const up = path.dirname(dir);
      if (up === dir) break;
      dir = up;
    }
  }
  throw new Error('cannot find the repository root (package.json next to bench/baselines)');
}

/**
 * Replace every `{{NAME}}` in `template` with `vars[NAME]`. A placeholder without a value, or
 * a value that no placeholder uses, is an error: a config that silently kept a `{{…}}` or
 * dropped a setting would make the comparison wrong without anyone noticing.
 */
export function fillTemplate(template: string, vars: Readonly<Record<string, string>>, what: string): string {
  const used = new Set<string>();
  const out = template.replace(/\{\{([A-Z0-9_]+)\}\}/g, (_m, name: string) => {
    const v = vars[name];
    if (v === undefined) throw new Error(`${what}: no value for {{${name}}}`);
    used.add(name);
    return v;
  });
  const unused = Object.keys(vars).filter((k) => !used.has(k));
  if (unused.length > 0) throw new Error(`${what}: template has no {{${unused.join('}}, {{')}}}`);
  return out;
}

/** Read `bench/<rel>` from the repo, fill it and write it to `dest`. */
export function renderTemplate(root: string, rel: string, vars: Readonly<Record<string, string>>, dest: string): void {
  const text = fs.readFileSync(path.join(root, 'bench', rel), 'utf8');
  fs.writeFileSync(dest, fillTemplate(text, vars, rel));
}
