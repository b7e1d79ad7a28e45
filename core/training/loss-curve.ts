/** `loss-curve.svg`: training and validation loss per epoch, as a small self-contained SVG. */
import type { EpochMetrics } from '../jobs/job-record.ts';

const W = 640;
const H = 360;
const PAD = { left: 64, right: 16, top: 28, bottom: 40 };

const escapeXml = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
const fmt = (v: number) =>
  Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : v.toPrecision(3);

export function lossCurveSvg(history: EpochMetrics[], title: string): string {
  const series = [
    { name: 'training loss', color: '#2563eb', points: history.map((h) => [h.epoch, h.loss] as const) },
    {
      name: 'validation loss',
      color: '#dc2626',
      points: history
        .filter((h) => h.valLoss !== undefined)
        .map((h) => [h.epoch, h.valLoss as number] as const),
    },
  ].filter((s) => s.points.length > 0);
  const all = series.flatMap((s) => s.points).filter(([, v]) => Number.isFinite(v));
  const maxEpoch = Math.max(1, ...all.map(([e]) => e));
  const minEpoch = Math.min(maxEpoch, ...all.map(([e]) => e));
  const top = Math.max(...all.map(([, v]) => v), 1e-9);
  const bottom = Math.min(0, ...all.map(([, v]) => v));
  const x = (e: number) =>
    PAD.left + ((e - minEpoch) / Math.max(maxEpoch - minEpoch, 1)) * (W - PAD.left - PAD.right);
  const y = (v: number) => H - PAD.bottom - ((v - bottom) / (top - bottom || 1)) * (H - PAD.top - PAD.bottom);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((t) => bottom + t * (top - bottom));
  const lines = series
    .map((s) => {
      const d = s.points
        .filter(([, v]) => Number.isFinite(v))
        .map(([e, v]) => `${x(e).toFixed(1)},${y(v).toFixed(1)}`)
        .join(' ');
      return `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${d}"/>`;
    })
    .join('\n  ');
  const legend = series
    .map(
      (s, i) =>
        `<text x="${W - PAD.right - 150}" y="${PAD.top + 16 * i}" fill="${s.color}" font-size="12">— ${s.name}</text>`,
    )
    .join('\n  ');
  const grid = ticks
    .map(
      (t) =>
        `<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#e5e7eb"/><text x="${PAD.left - 6}" y="${(y(t) + 4).toFixed(1)}" font-size="11" text-anchor="end" fill="#374151">${fmt(t)}</text>`,
    )
    .join('\n  ');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">
  <rect width="${W}" height="${H}" fill="#ffffff"/>
  <text x="${PAD.left}" y="18" font-size="14" fill="#111827">${escapeXml(title)}</text>
  ${grid}
  <line x1="${PAD.left}" x2="${W - PAD.right}" y1="${H - PAD.bottom}" y2="${H - PAD.bottom}" stroke="#6b7280"/>
  <text x="${PAD.left}" y="${H - 12}" font-size="11" fill="#374151">epoch ${minEpoch}</text>
  <text x="${W - PAD.right}" y="${H - 12}" font-size="11" text-anchor="end" fill="#374151">epoch ${maxEpoch}</text>
  ${lines}
  ${legend}
</svg>
`;
}
