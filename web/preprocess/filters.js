// Small tools on 2-D planes with no digit knowledge, beneath every stage (edge/preprocess/filters.py):
// Pillow's resampling reproduced exactly, morphology, blurs, components, Otsu's split, quantiles.

export const f32 = Math.fround;

/** A 2-D array: `h` rows of `w` values in `a` (Float32Array unless said otherwise). */
export const plane = (h, w, a = new Float32Array(h * w)) => ({h, w, a});
export const map = (p, fn) => plane(p.h, p.w, p.a.map(fn));
export const crop = (p, top, left, bottom, right) => {
  const out = plane(bottom - top, right - left, new p.a.constructor((bottom - top) * (right - left)));
  for (let y = top; y < bottom; y++) out.a.set(p.a.subarray(y * p.w + left, y * p.w + right), (y - top) * out.w);
  return out;
};
export const sum = (a) => a.reduce((s, v) => s + v, 0);
export const maxOf = (a) => a.reduce((m, v) => (v > m ? v : m), -Infinity);

/** Python's round(): halves go to the even neighbour (as np.round does too). */
export function pyRound(x) {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

/** (width, height) with the longer side `side`, aspect kept (`fit`). */
export function fit(h, w, side) {
  const s = side / Math.max(h, w);
  return [Math.max(1, pyRound(w * s)), Math.max(1, pyRound(h * s))];
}

const FILTERS = {
  box: {support: 0.5, fn: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0)},
  bilinear: {support: 1, fn: (x) => (Math.abs(x) < 1 ? 1 - Math.abs(x) : 0)},
  bicubic: {support: 2, fn: (x) => {
    const a = -0.5;
    x = Math.abs(x);
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
  }},
};

/** Pillow's precompute_coeffs: per output pixel, the first input pixel and normalised weights. */
function coefficients(inSize, outSize, filter) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filter.support * filterscale;
  return Array.from({length: outSize}, (_, xx) => {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    const k = Array.from({length: Math.max(xmax, 0)}, (_, x) => filter.fn((x + xmin - center + 0.5) / filterscale));
    const ww = sum(k);
    return {xmin, k: ww !== 0 ? k.map((v) => v / ww) : k};
  });
}

/** Image.fromarray(a, 'F').resize((w, h), filter): horizontal pass, then vertical, float32 between. */
export function resize(p, w, h, filter) {
  if (p.w === w && p.h === h) return plane(h, w, p.a.slice());
  let src = p;
  if (w !== p.w) {
    const cs = coefficients(p.w, w, FILTERS[filter]);
    const out = plane(p.h, w);
    for (let y = 0; y < p.h; y++) {
      for (let x = 0; x < w; x++) {
        const {xmin, k} = cs[x];
        let ss = 0;
        for (let i = 0; i < k.length; i++) ss += p.a[y * p.w + xmin + i] * k[i];
        out.a[y * w + x] = ss;
      }
    }
    src = out;
  }
  if (h !== src.h) {
    const cs = coefficients(src.h, h, FILTERS[filter]);
    const out = plane(h, w);
    for (let y = 0; y < h; y++) {
      const {xmin, k} = cs[y];
      for (let x = 0; x < w; x++) {
        let ss = 0;
        for (let i = 0; i < k.length; i++) ss += src.a[(xmin + i) * w + x] * k[i];
        out.a[y * w + x] = ss;
      }
    }
    src = out;
  }
  return src;
}

/** Square k x k max filter, edges replicated (`minmax_filter` with np.maximum): rows, then columns. */
export function maxFilter(p, k) {
  if (k <= 1) return p;
  const r = k >> 1;
  const {h, w} = p;
  const rows = new p.a.constructor(h * w);
  const line = new Float64Array(w + 2 * r);
  for (let y = 0; y < h; y++) {
    const base = y * w;
    for (let i = 0; i < w + 2 * r; i++) line[i] = p.a[base + Math.min(Math.max(i - r, 0), w - 1)];
    for (let x = 0; x < w; x++) {
      let m = line[x];
      for (let j = x + 1; j <= x + 2 * r; j++) if (line[j] > m) m = line[j];
      rows[base + x] = m;
    }
  }
  const out = new p.a.constructor(h * w);
  for (let y = 0; y < h; y++) {
    const base = y * w;
    out.set(rows.subarray(Math.max(y - r, 0) * w, Math.max(y - r, 0) * w + w), base);
    for (let yy = y - r + 1; yy <= y + r; yy++) {
      const from = Math.min(Math.max(yy, 0), h - 1) * w;
      for (let x = 0; x < w; x++) if (rows[from + x] > out[base + x]) out[base + x] = rows[from + x];
    }
  }
  return plane(h, w, out);
}

/** The distinct values of `a` in order, and each value's index among them: its rank, which a histogram can count. */
function ranks(a) {
  const sorted = Float32Array.from(a).sort();
  let n = 0;
  for (let i = 0; i < sorted.length; i++) if (n === 0 || sorted[i] !== sorted[n - 1]) sorted[n++] = sorted[i];
  const levels = sorted.subarray(0, n);
  const rank = new Int32Array(a.length);
  for (let i = 0; i < a.length; i++) {  // binary search
    let lo = 0;
    for (let hi = n - 1; lo < hi;) {
      const mid = (lo + hi) >> 1;
      if (levels[mid] < a[i]) lo = mid + 1;
      else hi = mid;
    }
    rank[i] = lo;
  }
  return [levels, rank];
}

/**
 * Square k x k (k odd) median filter, edges replicated or mirrored (`median_filter`): keeps a shadow's
 * edge, drops thin strokes. A running median (Huang's): the window is a histogram of the values' ranks
 * that slides along each row a column at a time, and the median is found by stepping from the last one:
 * about 2k steps a pixel, where sorting every window took 9 (7x7) to 24 (13x13) times as long. The rank
 * in the middle of the histogram is the rank of the value a sort would put in the middle: the same output.
 */
export function medianFilter(p, k, mode = 'edge') {
  if (k <= 1) return p;
  const r = k >> 1;
  const {h, w} = p;
  const at = mode === 'reflect'  // numpy's pad modes: mirrored without repeating the edge, or replicated
    ? (i, n) => (i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i)
    : (i, n) => Math.min(Math.max(i, 0), n - 1);
  const rows = Int32Array.from({length: h + 2 * r}, (_, i) => at(i - r, h) * w);  // padded row -> offset in p
  const cols = Int32Array.from({length: w + 2 * r}, (_, i) => at(i - r, w));
  const [levels, rank] = ranks(p.a);
  const counts = new Int32Array(levels.length);  // the window's ranks
  const half = (k * k) >> 1;
  const out = plane(h, w);
  let m = 0;  // the median's rank, carried from pixel to pixel and row to row
  let below = 0;  // how many of the window's values rank under m
  for (let y = 0; y < h; y++) {
    for (let x = -2 * r; x <= w + 2 * r; x++) {  // the window slides onto the padded row and off it again
      if (x < w) {  // padded column x + 2r comes on
        for (let i = y; i < y + k; i++) {
          const v = rank[rows[i] + cols[x + 2 * r]];
          counts[v]++;
          if (v < m) below++;
        }
      }
      if (x > 0) {  // column x - 1 goes off
        for (let i = y; i < y + k; i++) {
          const v = rank[rows[i] + cols[x - 1]];
          counts[v]--;
          if (v < m) below--;
        }
      }
      if (x < 0 || x >= w) continue;
      while (below > half) below -= counts[--m];  // the median: at most `half` values below it
      while (below + counts[m] <= half) below += counts[m++];
      out.a[y * w + x] = levels[m];
    }
  }
  return out;
}

/** Square k x k min filter: the max filter of the negated plane, negated back (exact). */
export const minFilter = (p, k) => map(maxFilter(map(p, (v) => -v), k), (v) => -v);

/** Mean over a (2r+1)^2 window, edges replicated, by float64 cumulative sums as `box_blur` does. */
export function boxBlur(p, r) {
  if (r <= 0) return p;
  const k = 2 * r + 1;
  const {h, w} = p;
  const pw = w + 2 * r;
  const at = (y, x) => p.a[Math.min(Math.max(y - r, 0), h - 1) * w + Math.min(Math.max(x - r, 0), w - 1)];
  const col = new Float64Array((h + 2 * r + 1) * pw);  // cumulative sums down each padded column
  for (let y = 0; y < h + 2 * r; y++) {
    for (let x = 0; x < pw; x++) col[(y + 1) * pw + x] = col[y * pw + x] + at(y, x);
  }
  const out = plane(h, w);
  const row = new Float64Array(pw + 1);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < pw; x++) row[x + 1] = row[x] + (col[(y + k) * pw + x] - col[y * pw + x]);
    for (let x = 0; x < w; x++) out.a[y * w + x] = (row[x + k] - row[x]) / (k * k);
  }
  return out;
}

/** Every n-th row and column, leaving about `pixels` values (`subsample`). */
export function subsample(p, pixels = 8000) {
  const step = Math.max(1, Math.ceil(Math.sqrt(p.a.length / pixels)));
  const h = Math.ceil(p.h / step);
  const w = Math.ceil(p.w / step);
  const out = plane(h, w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out.a[y * w + x] = p.a[y * step * p.w + x * step];
  return out;
}

/** Quantiles to 1/16 gray level from a histogram (`quantiles`). */
export function quantiles(values, qs) {
  const n = values.length;
  if (n === 0) return qs.map(() => 0);
  const counts = new Int32Array(16384);
  for (const v of values) counts[Math.min(16383, Math.max(0, Math.trunc(f32(f32(v + 512) * 16))))]++;
  return qs.map((q) => {
    const rank = Math.min(n - 1, Math.max(0, Math.trunc(q * n)));
    let seen = 0;
    let i = 0;
    while ((seen += counts[i]) < rank + 1) i++;
    return i / 16 - 512;
  });
}

export const median = (values) => quantiles(values, [0.5])[0];

/** Otsu's threshold of values on any scale, and its effectiveness 0..1 (`otsu_split`). */
export function otsuSplit(v) {
  if (v.length === 0) return [0, 0];
  let lo = Infinity;
  let hi = -Infinity;
  for (const x of v) { if (x < lo) lo = x; if (x > hi) hi = x; }
  if (!(hi - lo > 1e-6)) return [hi + 1, 0];
  const scale = 255 / (hi - lo);
  const hist = new Float64Array(256);
  let counted = 0;
  for (const x of v) {
    const bin = Math.trunc(f32(f32(x - lo) * f32(scale)));
    if (bin < 256) { hist[bin]++; counted++; }
  }
  hist[255] += v.length - counted;
  const total = v.length;
  let w0 = 0;
  let m0 = 0;
  let mTotal = 0;
  let sq = 0;
  for (let i = 0; i < 256; i++) { mTotal += hist[i] * i; sq += hist[i] * i * i; }
  let best = -Infinity;
  let k = 0;
  for (let i = 0; i < 256; i++) {
    w0 += hist[i];
    m0 += hist[i] * i;
    let between = (mTotal * w0 - m0 * total) ** 2 / (w0 * (total - w0));
    if (!Number.isFinite(between)) between = -1;
    if (between > best) { best = between; k = i; }
  }
  const variance = sq / total - (mTotal / total) ** 2;
  const eta = variance > 0 ? best / total / total / variance : 0;
  return [lo + (k + 1) / scale, Math.min(Math.max(eta, 0), 1)];
}

/** 8-connected components of a 0/1 mask, numbered 1.. in raster order of their first pixel (`label`). */
export function label(mask) {
  const {h, w} = mask;
  const labels = plane(h, w, new Int32Array(h * w));
  const stack = [];
  let count = 0;
  for (let start = 0; start < h * w; start++) {
    if (!mask.a[start] || labels.a[start]) continue;
    labels.a[start] = ++count;
    stack.push(start);
    while (stack.length) {
      const i = stack.pop();
      const y = Math.floor(i / w);
      const x = i - y * w;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const yy = y + dy;
          const xx = x + dx;
          const j = yy * w + xx;
          if (yy >= 0 && yy < h && xx >= 0 && xx < w && mask.a[j] && !labels.a[j]) {
            labels.a[j] = count;
            stack.push(j);
          }
        }
      }
    }
  }
  return [labels, count];
}

/** Area, ink mass (sum of `weight`), half-open bounding box, perimeter and mean stroke width of every
 * non-empty label (`components`, `Component.stroke`). */
export function components(labels, weight) {
  const {h, w, a} = labels;
  const found = new Map();
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      const id = a[i];
      if (!id) continue;
      let c = found.get(id);
      if (!c) {
        found.set(id, c = {label: id, area: 0, mass: 0, top: y, left: x, bottom: y + 1, right: x + 1, perimeter: 0});
      }
      c.area++;
      c.mass += weight.a[i];
      c.left = Math.min(c.left, x);
      c.right = Math.max(c.right, x + 1);
      c.bottom = y + 1;
      c.perimeter += (y === 0 || a[i - w] !== id) + (y === h - 1 || a[i + w] !== id)
        + (x === 0 || a[i - 1] !== id) + (x === w - 1 || a[i + 1] !== id);
    }
  }
  return [...found.values()].sort((p, q) => p.label - q.label)
    .map((c) => ({...c, height: c.bottom - c.top, width: c.right - c.left,
      stroke: 2 * c.area / Math.max(c.perimeter, 1)}));
}

export function quadraticBasis(h, w) {
  const basis = [];
  for (let yy = 0; yy < h; yy++) {
    for (let xx = 0; xx < w; xx++) {
      const x = f32(f32(f32(xx / Math.max(w - 1, 1)) * 2) - 1);
      const y = f32(f32(f32(yy / Math.max(h - 1, 1)) * 2) - 1);
      basis.push([1, x, y, f32(x * x), f32(x * y), f32(y * y)]);
    }
  }
  return basis;
}

/** Solves the normal equations of a least-squares fit; null if singular (np.linalg.LinAlgError). */
export function leastSquares(rows, values) {
  const n = rows[0].length;
  const m = Array.from({length: n}, () => new Float64Array(n + 1));
  rows.forEach((r, k) => {
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) m[i][j] += r[i] * r[j];
      m[i][n] += r[i] * values[k];
    }
  });
  for (let c = 0; c < n; c++) {
    let pivot = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r][c]) > Math.abs(m[pivot][c])) pivot = r;
    if (m[pivot][c] === 0) return null;
    [m[c], m[pivot]] = [m[pivot], m[c]];
    for (let r = c + 1; r < n; r++) {
      const f = m[r][c] / m[c][c];
      for (let j = c; j <= n; j++) m[r][j] -= f * m[c][j];
    }
  }
  const coef = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let s = m[i][n];
    for (let j = i + 1; j < n; j++) s -= m[i][j] * coef[j];
    coef[i] = s / m[i][i];
  }
  return coef;
}

/** Count of 4-neighbour changes in a 0/1 plane (the stroke-width estimate's perimeter). */
export function edgeCount(p) {
  let edges = 0;
  for (let y = 0; y < p.h; y++) {
    for (let x = 0; x < p.w; x++) {
      const v = p.a[y * p.w + x];
      if (y + 1 < p.h && v !== p.a[(y + 1) * p.w + x]) edges++;
      if (x + 1 < p.w && v !== p.a[y * p.w + x + 1]) edges++;
    }
  }
  return edges;
}

/** For every set pixel, the length of the horizontal run of set pixels it belongs to. */
export function runLengths(mask) {
  const out = plane(mask.h, mask.w, new Int32Array(mask.a.length));
  for (let y = 0; y < mask.h; y++) {
    let x = 0;
    while (x < mask.w) {
      if (!mask.a[y * mask.w + x]) { x++; continue; }
      let end = x;
      while (end < mask.w && mask.a[y * mask.w + end]) end++;
      out.a.fill(end - x, y * mask.w + x, y * mask.w + end);
      x = end;
    }
  }
  return out;
}

export function transpose(p) {
  const out = plane(p.w, p.h, new p.a.constructor(p.a.length));
  for (let y = 0; y < p.h; y++) for (let x = 0; x < p.w; x++) out.a[x * p.h + y] = p.a[y * p.w + x];
  return out;
}

/** 3x3 gaussian blur inside the plane's own bounds (zero outside), peak back to 1 (`soften`). */
export function soften(p, sigma) {
  const t = Math.exp(-0.5 / sigma ** 2);
  const d = f32(1 + 2 * t);
  const k = [f32(f32(t) / d), f32(1 / d), f32(f32(t) / d)];
  const at = (q, y, x) => (y < 0 || y >= q.h || x < 0 || x >= q.w ? 0 : q.a[y * q.w + x]);
  const pass = (q, dy, dx) => {
    const out = plane(q.h, q.w);
    for (let y = 0; y < q.h; y++) {
      for (let x = 0; x < q.w; x++) {
        const near = f32(f32(k[0] * at(q, y - dy, x - dx)) + f32(k[1] * at(q, y, x)));
        out.a[y * q.w + x] = f32(near + f32(k[2] * at(q, y + dy, x + dx)));
      }
    }
    return out;
  };
  const out = pass(pass(p, 1, 0), 0, 1);
  const top = Math.max(maxOf(out.a), 1e-6);
  return map(out, (v) => f32(v / top));
}

/** Half-open bounding box and count of the pixels where `test` holds. */
export function bounds(p, test = (v) => v > 0) {
  let [top, left, bottom, right, count] = [p.h, p.w, 0, 0, 0];
  for (let y = 0; y < p.h; y++) {
    for (let x = 0; x < p.w; x++) {
      if (!test(p.a[y * p.w + x])) continue;
      count++;
      top = Math.min(top, y);
      left = Math.min(left, x);
      bottom = y + 1;
      right = Math.max(right, x + 1);
    }
  }
  return {top, left, bottom, right, count};
}

/** (row, column) centre of mass of a plane. */
export function centreOfMass(p) {
  let mass = 0;
  let cy = 0;
  let cx = 0;
  for (let y = 0; y < p.h; y++) {
    for (let x = 0; x < p.w; x++) {
      const v = p.a[y * p.w + x];
      mass += v;
      cy += v * y;
      cx += v * x;
    }
  }
  return [cy / mass, cx / mass];
}
