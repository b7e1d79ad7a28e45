/**
 * Writes the examples' synthetic datasets (seeded, so the files never change):
 * `npx node examples/generate.ts`. Iris comes from the UCI data set.
 */
import { writeFileSync } from 'node:fs';

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}
const dir = new URL('.', import.meta.url);
const write = (path: string, text: string) => writeFileSync(new URL(path, dir), text);
const round = (v: number, d = 3) => Number(v.toFixed(d));

// Regression with a categorical column and a few missing values.
{
  const r = rng(1);
  const lines = ['size_m2,rooms,age_years,neighbourhood,price_k'];
  const hoods = { centre: 120, river: 60, suburb: 0, industrial: -40 };
  for (let i = 0; i < 400; i++) {
    const size = 30 + r() * 150;
    const rooms = Math.max(1, Math.round(size / 30 + (r() - 0.5) * 2));
    const age = Math.floor(r() * 80);
    const hood = Object.keys(hoods)[Math.floor(r() * 4)] as keyof typeof hoods;
    const price = 50 + 3.1 * size + 12 * rooms - 1.2 * age + hoods[hood] + (r() - 0.5) * 30;
    const missingAge = r() < 0.03;
    lines.push(`${round(size, 1)},${rooms},${missingAge ? '' : age},${hood},${round(price, 1)}`);
  }
  write('house-prices/houses.csv', `${lines.join('\n')}\n`);
}

/** An 8×8 image with a bar: 'horizontal', 'vertical', 'diagonal' or 'antidiagonal', plus noise. */
function bar(kind: string, r: () => number): number[][][] {
  const at = 1 + Math.floor(r() * 6);
  const shift = Math.floor(r() * 3) - 1;
  return Array.from({ length: 8 }, (_, y) =>
    Array.from({ length: 8 }, (_, x) => {
      const on =
        kind === 'horizontal'
          ? y === at
          : kind === 'vertical'
            ? x === at
            : kind === 'diagonal'
              ? x - y === shift
              : x + y === 7 + shift;
      return [round((on ? 1 : 0) + (r() - 0.5) * 0.4, 2)];
    }),
  );
}
{
  const r = rng(2);
  const rows = Array.from({ length: 300 }, (_, i) => {
    const shape = i % 2 ? 'horizontal' : 'vertical';
    return JSON.stringify({ pixels: bar(shape, r), shape });
  });
  write('shapes-cnn/bars.jsonl', `${rows.join('\n')}\n`);
  const r2 = rng(3);
  const few = Array.from({ length: 60 }, (_, i) => {
    const shape = i % 2 ? 'diagonal' : 'antidiagonal';
    return JSON.stringify({ pixels: bar(shape, r2), shape });
  });
  write('fine-tune/diagonals.jsonl', `${few.join('\n')}\n`);
}

// Sequences: a noisy trend that rises, falls or stays flat.
{
  const r = rng(4);
  const kinds = ['rising', 'falling', 'flat'];
  const rows = Array.from({ length: 300 }, (_, i) => {
    const trend = kinds[i % 3] as string;
    const slope = trend === 'rising' ? 0.05 : trend === 'falling' ? -0.05 : 0;
    const start = r() * 0.5;
    const values = Array.from({ length: 20 }, (_, t) => [round(start + slope * t + (r() - 0.5) * 0.3, 3)]);
    return JSON.stringify({ values, trend });
  });
  write('sequence-lstm/trends.jsonl', `${rows.join('\n')}\n`);
}

// A real-world-looking table: an id column, a date, text categories, blank cells, a binary label.
// Churn depends on tenure, spend, support calls, plan and the signup season; customers.csv trains,
// new-customers.csv is held out (with its true labels, to compare predictions against).
{
  const r = rng(11);
  const plans = ['basic', 'plus', 'pro'];
  const regions = ['north', 'south', 'east', 'west'];
  const header = 'customer_id,signup_date,plan,region,monthly_spend,tenure_months,support_calls,churned';
  const rows: string[] = [];
  for (let i = 0; i < 1400; i++) {
    const plan = plans[Math.floor(r() * 3)] as string;
    const region = regions[Math.floor(r() * 4)] as string;
    const tenure = Math.floor(1 + r() * 60);
    const spend = 20 + (plan === 'pro' ? 60 : plan === 'plus' ? 30 : 0) + r() * 40;
    const calls = Math.floor(r() * r() * 10);
    const day = Math.floor(r() * 1460);
    const date = new Date(Date.UTC(2020, 0, 1) + day * 86_400_000);
    const month = date.getUTCMonth() + 1;
    const z =
      1.2 -
      0.07 * tenure +
      0.45 * calls -
      0.02 * (spend - 60) +
      (plan === 'basic' ? 0.8 : plan === 'pro' ? -0.6 : 0) +
      (month === 12 || month === 1 ? 0.7 : 0) +
      (r() - 0.5) * 1.5;
    const churned = 1 / (1 + Math.exp(-z)) > 0.5 ? 'yes' : 'no';
    const blank = (v: string | number, p: number) => (r() < p ? '' : String(v));
    rows.push(
      [
        `C-${String(10000 + i)}`,
        date.toISOString().slice(0, 10),
        blank(plan, 0.04),
        region,
        blank(round(spend, 2), 0.05),
        tenure,
        blank(calls, 0.03),
        churned,
      ].join(','),
    );
  }
  write('churn/customers.csv', `${[header, ...rows.slice(0, 1200)].join('\n')}\n`);
  write('churn/new-customers.csv', `${[header, ...rows.slice(1200)].join('\n')}\n`);
}
