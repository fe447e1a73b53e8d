// SVG charts: stacked bars per level, plain bars, sparklines. Each bar has
// a <title> so its numbers show on hover and reach screen readers.
import { h, s, LEVELS, fmtNum } from './lib.js';

const BAR_COLOURS = {
  trace: 'var(--bar-trace)', debug: 'var(--bar-debug)', info: 'var(--bar-info)',
  warn: 'var(--bar-warn)', error: 'var(--bar-error)', critical: 'var(--bar-critical)',
};

/** Stacked bars: `buckets` = [{t, trace: n, …}], `label(t)` names a bucket. */
export function stackedBars(buckets, { title, label, height = 140 }) {
  const w = 600, top = 8, bottom = 18, left = 34;
  const totals = buckets.map((b) => LEVELS.reduce((a, l) => a + (b[l] || 0), 0));
  const max = Math.max(1, ...totals);
  const bw = (w - left) / Math.max(1, buckets.length);
  const y = (v) => top + (height - top - bottom) * (1 - v / max);
  const total = totals.reduce((a, b) => a + b, 0);
  const peak = totals.indexOf(Math.max(...totals));
  const summary = total
    ? `${title}: ${fmtNum(total)} in all; the most, ${fmtNum(totals[peak])}, at ${label(buckets[peak].t)} UTC`
    : `${title}: none`;
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${w} ${height}`, role: 'img', 'aria-label': summary });
  svg.append(s('title', {}, summary));
  svg.append(s('line', { class: 'axis', x1: left, x2: w, y1: y(0), y2: y(0) }));
  svg.append(s('text', { x: left - 4, y: y(max) + 8, 'text-anchor': 'end' }, fmtNum(max)));
  svg.append(s('text', { x: left - 4, y: y(0), 'text-anchor': 'end' }, '0'));
  buckets.forEach((b, i) => {
    const x = left + i * bw;
    let acc = 0;
    const g = s('g', {});
    const parts = [];
    for (const l of LEVELS) {
      const n = b[l] || 0;
      if (!n) continue;
      g.append(s('rect', { x: x + 1, width: Math.max(1, bw - 2), y: y(acc + n), height: Math.max(0.5, y(acc) - y(acc + n)), fill: BAR_COLOURS[l] }));
      acc += n;
      parts.push(`${l} ${fmtNum(n)}`);
    }
    // A transparent full-height rect makes the whole column hoverable.
    g.append(s('rect', { x, width: bw, y: top, height: height - top - bottom, fill: 'transparent' }));
    g.append(s('title', {}, `${label(b.t)}: ${parts.length ? parts.join(', ') : 'nothing'}`));
    svg.append(g);
    if (i % Math.ceil(buckets.length / 8) === 0) {
      svg.append(s('text', { x: x + bw / 2, y: height - 4, 'text-anchor': 'middle' }, label(b.t)));
    }
  });
  return svg;
}

export function legend() {
  return h('div', { class: 'legend', attrs: { 'aria-hidden': 'true' } },
    LEVELS.map((l) => {
      const sw = h('span', {}, l);
      sw.style.setProperty('--sw', BAR_COLOURS[l]);
      return sw;
    }));
}

/** Plain bars: `points` = [[t, n]]. */
export function bars(points, { title, label, height = 110 }) {
  return stackedBars(points.map(([t, n]) => ({ t, error: n })), { title, label, height });
}

/** A tiny bar chart of counts (oldest first). */
export function sparkline(counts, title) {
  const w = 96, hgt = 22;
  const max = Math.max(1, ...counts);
  const bw = w / counts.length;
  const svg = s('svg', { class: 'spark', viewBox: `0 0 ${w} ${hgt}`, role: 'img', 'aria-label': title });
  svg.append(s('title', {}, title));
  counts.forEach((n, i) => {
    const bh = n ? Math.max(1.5, (hgt - 1) * n / max) : 0;
    if (bh) svg.append(s('rect', { x: i * bw + 0.5, width: Math.max(1, bw - 1), y: hgt - bh, height: bh }));
  });
  return svg;
}

// Buckets are UTC hours and days (as the server counts them), so their
// labels are UTC too: a local label would name the wrong day or half hour.
export const hourLabel = (t) => { const d = new Date(t); return `${String(d.getUTCHours()).padStart(2, '0')}:00`; };
export const dayLabel = (t) => { const d = new Date(t); return `${d.getUTCMonth() + 1}/${d.getUTCDate()}`; };
