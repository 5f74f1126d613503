/**
 * The report's chart, drawn by hand: per scenario, two panels of horizontal grouped bars
 * (req/s, and proxy CPU µs per request), one group per contender, one bar per load generator.
 */
import type { ScenarioOutcome, SummaryRow } from './model';

const WIDTH = 980;
const LABEL_W = 110;
const PANEL_W = 370;
const GAP = 60;
const BAR_H = 13;
const GROUP_GAP = 9;
const COLORS: Record<string, string> = { autocannon: '#4e79a7', wrk: '#f28e2b' };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmtValue(v: number): string {
  if (v >= 10_000) return `${(v / 1000).toFixed(1)}k`;
  if (v >= 100) return v.toFixed(0);
  return v.toFixed(1);
}

interface Panel {
  title: string;
  value: (r: SummaryRow) => number | null;
}

const PANELS: readonly Panel[] = [
  { title: 'requests/s (higher is better)', value: (r) => r.rps },
  { title: 'proxy CPU µs per request (lower is better)', value: (r) => r.proxyCpuUsPerReq },
];

export function renderSvg(title: string, outcomes: readonly ScenarioOutcome[]): string | null {
  const ran = outcomes.filter((o) => !o.notAvailable && o.rows.length > 0);
  if (ran.length === 0) return null;
  const loadgens = [...new Set(ran.flatMap((o) => o.rows.map((r) => r.loadgen)))];
  const parts: string[] = [];
  let y = 34;
  parts.push(`<text x="12" y="22" font-size="16" font-weight="bold">${esc(title)}</text>`);
  // Legend.
  loadgens.forEach((lg, i) => {
    const x = WIDTH - 220 + i * 110;
    parts.push(`<rect x="${x}" y="10" width="12" height="12" fill="${COLORS[lg] ?? '#999'}"/>`);
    parts.push(`<text x="${x + 16}" y="21" font-size="12">${esc(lg)}</text>`);
  });

  for (const o of ran) {
    const contenders = [...new Set(o.rows.map((r) => r.contender))];
    y += 22;
    parts.push(`<text x="12" y="${y}" font-size="14" font-weight="bold">${esc(o.scenario)}</text>`);
    y += 8;
    const groupH = loadgens.length * BAR_H + GROUP_GAP;
    const top = y + 18;
    PANELS.forEach((panel, pi) => {
      const x0 = LABEL_W + pi * (PANEL_W + GAP);
      const values = o.rows.map(panel.value).filter((v): v is number => v !== null && Number.isFinite(v));
      const max = Math.max(1e-9, ...values);
      parts.push(`<text x="${x0}" y="${y + 12}" font-size="12" fill="#333">${esc(panel.title)}</text>`);
      parts.push(`<line x1="${x0}" y1="${top - 2}" x2="${x0}" y2="${top + contenders.length * groupH - GROUP_GAP + 2}" stroke="#888"/>`);
      contenders.forEach((c, ci) => {
        loadgens.forEach((lg, li) => {
          const row = o.rows.find((r) => r.contender === c && r.loadgen === lg);
          const v = row ? panel.value(row) : null;
          const by = top + ci * groupH + li * BAR_H;
          if (v === null || !Number.isFinite(v)) {
            parts.push(`<text x="${x0 + 4}" y="${by + BAR_H - 3}" font-size="10" fill="#999">—</text>`);
            return;
          }
          const w = Math.max(1, ((PANEL_W - 50) * v) / max);
          parts.push(`<rect x="${x0}" y="${by}" width="${w.toFixed(1)}" height="${BAR_H - 2}" fill="${COLORS[lg] ?? '#999'}"/>`);
          parts.push(`<text x="${(x0 + w + 4).toFixed(1)}" y="${by + BAR_H - 3}" font-size="10">${fmtValue(v)}</text>`);
        });
      });
    });
    contenders.forEach((c, ci) => {
      const cy = top + ci * groupH + (loadgens.length * BAR_H) / 2 + 4;
      parts.push(`<text x="${LABEL_W - 8}" y="${cy}" font-size="12" text-anchor="end">${esc(c)}</text>`);
    });
    y = top + contenders.length * groupH + 6;
  }
  const height = y + 12;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
