import type { TraceFile } from './boot-trace.js';

const ROW = 26;
const LABEL_WIDTH = 170;
const CHART_WIDTH = 620;
const TOP = 44;

const xmlText = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A tick step (ms) giving 4–10 ticks over `totalMs`. */
function tickStep(totalMs: number): number {
  for (const step of [10, 20, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000]) {
    if (totalMs / step <= 10) return step;
  }
  return 120_000;
}

/**
 * A waterfall picture of a trace: one row per phase, its bar placed on a time axis, its
 * duration written beside it, host and guest phases in two colours, and the slowest phase
 * marked, so a slow start explains itself at a glance.
 */
export function waterfallSvg(trace: TraceFile, title = 'hull run: where the time goes'): string {
  const events = trace.traceEvents;
  const totalUs = Math.max(1, ...events.map((e) => e.ts + e.dur));
  const totalMs = totalUs / 1000;
  const x = (us: number) => LABEL_WIDTH + (us / totalUs) * CHART_WIDTH;
  const slowest = events.reduce((a, b) => (b.dur > a.dur ? b : a), events[0]!);
  const height = TOP + events.length * ROW + 54;
  const width = LABEL_WIDTH + CHART_WIDTH + 110;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">${xmlText(title)}</text>`,
    `<text x="${width - 10}" y="20" text-anchor="end">total ${(totalMs / 1000).toFixed(2)} s</text>`,
  ];
  const step = tickStep(totalMs);
  const axisY = TOP + events.length * ROW + 6;
  for (let t = 0; t <= totalMs; t += step) {
    const tx = x(t * 1000);
    out.push(`<line x1="${tx}" y1="${TOP - 6}" x2="${tx}" y2="${axisY}" stroke="#e4e4e4"/>`);
    out.push(
      `<text x="${tx}" y="${axisY + 16}" text-anchor="middle" fill="#555">${t >= 1000 ? `${t / 1000} s` : `${t} ms`}</text>`,
    );
  }
  events.forEach((e, i) => {
    const y = TOP + i * ROW;
    const bx = x(e.ts);
    const bw = Math.max(1.5, x(e.ts + e.dur) - bx);
    const isSlowest = e === slowest;
    const fill = isSlowest ? '#d9534f' : e.cat === 'guest' ? '#5b9bd5' : '#70ad47';
    out.push(`<text x="${LABEL_WIDTH - 8}" y="${y + 15}" text-anchor="end">${xmlText(e.name)}</text>`);
    out.push(
      `<rect x="${bx.toFixed(1)}" y="${y + 3}" width="${bw.toFixed(1)}" height="${ROW - 8}" rx="2" fill="${fill}"/>`,
    );
    const label = `${(e.dur / 1000).toFixed(e.dur < 10_000 ? 1 : 0)} ms${isSlowest ? '  ◀ slowest' : ''}`;
    out.push(
      `<text x="${(bx + bw + 5).toFixed(1)}" y="${y + 15}"${isSlowest ? ' font-weight="bold" fill="#d9534f"' : ''}>${label}</text>`,
    );
  });
  const legendY = height - 8;
  out.push(
    `<rect x="10" y="${legendY - 10}" width="10" height="10" fill="#70ad47"/><text x="24" y="${legendY}">host</text>`,
  );
  out.push(
    `<rect x="64" y="${legendY - 10}" width="10" height="10" fill="#5b9bd5"/><text x="78" y="${legendY}">guest (mapped to the host clock)</text>`,
  );
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
