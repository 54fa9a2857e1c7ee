// Statistics and table formatting shared by the benchmark suites: medians of per-round ratios, min–max, shuffling.

/** Median of a list of numbers (mean of the middle two for an even count). */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const k = s.length >> 1;
  return s.length % 2 ? s[k] : (s[k - 1] + s[k]) / 2;
}

/** Fisher–Yates, in place; every round runs its variants in a fresh order so drift hits all of them alike. */
export function shuffle(a) {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** `{ median, min, max, n }` of a list. */
export function summary(xs) {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}

/**
 * Ratios paired by round: `samples[variant][round] / samples[base][round]`, summarised per variant.
 * Pairing by round is what makes ratios meaningful on a noisy shared machine.
 */
export function pairedRatios(samples, base) {
  const out = {};
  for (const [name, xs] of Object.entries(samples)) {
    out[name] = summary(xs.map((x, i) => x / samples[base][i]));
  }
  return out;
}

/** `1.03 (0.98–1.10)` */
export function fmtRatio(s, digits = 2) {
  return `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
}

/** A Markdown table from a header row and rows of cells. */
export function mdTable(header, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`;
  const align = header.map((_, i) => (i === 0 ? '---' : '---:'));
  return [line(header), line(align), ...rows.map(line)].join('\n');
}
