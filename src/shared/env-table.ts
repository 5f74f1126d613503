/**
 * The README's table of `SLUICE_*` configuration variables, generated from the schema
 * (`sluice --env-table` prints it; test/unit/docs.test.ts checks the README against it).
 */
import { ENV_VARS } from './config';
import { describeLeaf } from './schema';

export function envTableMarkdown(): string {
  const rows = ENV_VARS.map((v) => {
    const d = describeLeaf(v.schema);
    const dflt = d.default === '' ? '' : `\`${d.default}\``;
    return `| \`${v.name}\` | \`${v.path.join('.')}\` | ${d.type} | ${dflt} | ${v.schema.doc.replace(/\|/g, '\\|')} |`;
  });
  return ['| Variable | Option | Type | Default | Meaning |', '| --- | --- | --- | --- | --- |', ...rows].join('\n');
}
