// edge/preprocess.py `to_mnist`, ported to the browser: any drawing or photo -> 28x28 MNIST framing.
//
// A faithful port, step for step and with the same constants, so the page feeds the model what
// `cli.py predict` would; tests/test_web.py checks both agree within one gray level. Pillow's
// resampling (reduce, resize with BOX, BILINEAR and BICUBIC in 'F' mode) is reproduced exactly,
// and numpy's float32 arithmetic is mirrored with Math.fround where it can change a decision.
// Not ported: decoding (the browser decodes; JPEG decoders differ slightly), Pillow's JPEG draft
// mode, and image modes a canvas cannot hold (16-bit, palette): the input is always RGBA ImageData.

export const SIZE = 28;
const WORK_SIDE = 200;
const MIN_WORK_SIDE = 64;
const BOX = 20;
const MIN_STROKE = 1.6;
const BBOX_LEVEL = 0.1;
const MIN_CONTRAST = 16;
const MIN_SNR = 5;
const MIN_SEPARATION = 0.8;
const MIN_DIGIT = 0.04;
const NOISY = 4;
const SOFTEN = 0.5;
const f32 = Math.fround;

/** A 2-D array: `h` rows of `w` values in `a` (Float32Array unless said otherwise). */
const plane = (h, w, a = new Float32Array(h * w)) => ({h, w, a});
const map = (p, fn) => plane(p.h, p.w, p.a.map(fn));
const crop = (p, top, left, bottom, right) => {
  const out = plane(bottom - top, right - left, new p.a.constructor((bottom - top) * (right - left)));
  for (let y = top; y < bottom; y++) out.a.set(p.a.subarray(y * p.w + left, y * p.w + right), (y - top) * out.w);
  return out;
};
const sum = (a) => a.reduce((s, v) => s + v, 0);
const maxOf = (a) => a.reduce((m, v) => (v > m ? v : m), -Infinity);

/** Python's round(): halves go to the even neighbour (as np.round does too). */
function pyRound(x) {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

/** (width, height) with the longer side `side`, aspect kept (`_fit`). */
function fit(h, w, side) {
  const s = side / Math.max(h, w);
  return [Math.max(1, pyRound(w * s)), Math.max(1, pyRound(h * s))];
}

// ------------------------------------------------------------------------------------------------
// Pillow's resampling

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
function resize(p, w, h, filter) {
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

/** Image.reduce(factor) of 8-bit channels: Pillow's fixed-point box mean (edge blocks are partial). */
function reduce(p, factor) {
  const h = Math.ceil(p.h / factor);
  const w = Math.ceil(p.w / factor);
  const out = plane(h, w, new Uint8Array(h * w));
  for (let y = 0; y < h; y++) {
    const bh = Math.min(factor, p.h - y * factor);
    for (let x = 0; x < w; x++) {
      const bw = Math.min(factor, p.w - x * factor);
      const count = bw * bh;
      const multiplier = Math.trunc(f32(4294967296 / (256 * count)));
      let ss = Math.floor(count / 2);
      for (let yy = y * factor; yy < y * factor + bh; yy++) {
        for (let xx = x * factor; xx < x * factor + bw; xx++) ss += p.a[yy * p.w + xx];
      }
      out.a[y * w + x] = Math.floor((ss * multiplier) / 16777216);
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// Gray levels

/** RGBA ImageData -> float32 gray plane (`to_gray`), box-shrunk by an integer factor to `maxSide`. */
function toGray(image, maxSide) {
  const {width: w, height: h, data} = image;
  const n = w * h;
  const lum = plane(h, w, new Uint8Array(n));
  const alpha = plane(h, w, new Uint8Array(n));
  for (let i = 0; i < n; i++) {
    // Pillow's RGB -> L: ITU-R 601-2 luma in 16-bit fixed point.
    lum.a[i] = (data[4 * i] * 19595 + data[4 * i + 1] * 38470 + data[4 * i + 2] * 7471 + 0x8000) >> 16;
    alpha.a[i] = data[4 * i + 3];
  }
  const opaque = isOpaque(data);
  const factor = maxSide && Math.max(w, h) > maxSide ? Math.ceil(Math.max(w, h) / maxSide) : 1;
  if (opaque) {
    const g = factor > 1 ? reduce(lum, factor) : lum;
    return plane(g.h, g.w, Float32Array.from(g.a));
  }
  if (factor > 1) shrinkPremultiplied(lum, alpha, factor);
  return composite(lum, alpha);
}

/** LA reduce as Pillow does it: premultiply alpha (La), reduce both, divide back out (in place). */
function shrinkPremultiplied(lum, alpha, factor) {
  const premultiplied = plane(lum.h, lum.w, lum.a.map((v, i) => {
    const t = v * alpha.a[i] + 128;
    return ((t >> 8) + t) >> 8;
  }));
  const l = reduce(premultiplied, factor);
  const a = reduce(alpha, factor);
  Object.assign(lum, l, {a: l.a.map((v, i) => (a.a[i] === 0 || a.a[i] === 255 ? v : Math.min(255, Math.trunc(255 * v / a.a[i]))))});
  Object.assign(alpha, a);
}

/** Transparency becomes the paper's tone, or a ground contrasting with the strokes (`_composite`). */
function composite(lum, alpha8) {
  const alpha = Float32Array.from(alpha8.a, (v) => v / 255);
  const opaque = Array.from(alpha, (v) => v > 0.5);
  const count = opaque.filter(Boolean).length;
  const out = plane(lum.h, lum.w);
  if (count === 0) return out;
  let bg;
  if (count / alpha.length > 0.5) {
    bg = exactMedian(Array.from(lum.a).filter((_, i) => opaque[i]));
  } else {
    let weighted = 0;
    lum.a.forEach((v, i) => { weighted += f32(v * alpha[i]); });
    bg = weighted / sum(alpha) < 128 ? 255 : 0;
  }
  lum.a.forEach((v, i) => { out.a[i] = f32(f32(v * alpha[i]) + f32(f32(bg) * f32(1 - alpha[i]))); });
  return out;
}

/** No transparency at all: read as Pillow reads an RGB image (no alpha compositing). */
function isOpaque(rgba) {
  for (let i = 3; i < rgba.length; i += 4) if (rgba[i] !== 255) return false;
  return true;
}

function exactMedian(values) {
  const s = values.sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** `working_gray`: long side at most `maxSide`, tiny images upscaled (bicubic) to 64 px. */
function workingGray(image, maxSide) {
  const g = toGray(image, maxSide);
  if (Math.max(g.h, g.w) >= MIN_WORK_SIDE) return g;
  const [w, h] = fit(g.h, g.w, MIN_WORK_SIDE);
  return map(resize(g, w, h, 'bicubic'), (v) => Math.min(255, Math.max(0, v)));
}

// ------------------------------------------------------------------------------------------------
// Small morphology and statistics

/** Square k x k max filter, edges replicated (`_minmax_filter` with np.maximum): rows, then columns. */
function maxFilter(p, k) {
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

/** Square k x k min filter: the max filter of the negated plane, negated back (exact). */
const minFilter = (p, k) => map(maxFilter(map(p, (v) => -v), k), (v) => -v);

/** Mean over a (2r+1)^2 window, edges replicated, by float64 cumulative sums as `_box_blur` does. */
function boxBlur(p, r) {
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

/** Every n-th row and column, leaving about `pixels` values (`_sample`). */
function sample(p, pixels = 8000) {
  const step = Math.max(1, Math.ceil(Math.sqrt(p.a.length / pixels)));
  const h = Math.ceil(p.h / step);
  const w = Math.ceil(p.w / step);
  const out = plane(h, w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out.a[y * w + x] = p.a[y * step * p.w + x * step];
  return out;
}

/** Quantiles to 1/16 gray level from a histogram (`_quantiles`). */
function quantiles(values, qs) {
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

const median = (values) => quantiles(values, [0.5])[0];

/** Otsu's threshold of values on any scale, and its effectiveness 0..1 (`_otsu_split`). */
function otsuSplit(v) {
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

// ------------------------------------------------------------------------------------------------
// Connected components

/** 8-connected components of a 0/1 mask, numbered 1.. in raster order of their first pixel (`label`). */
function label(mask) {
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

/** Area, ink mass (sum of `weight`) and half-open bounding box of every non-empty label (`components`). */
function components(labels, weight) {
  const found = new Map();
  for (let y = 0; y < labels.h; y++) {
    for (let x = 0; x < labels.w; x++) {
      const i = y * labels.w + x;
      const id = labels.a[i];
      if (!id) continue;
      let c = found.get(id);
      if (!c) found.set(id, c = {label: id, area: 0, mass: 0, top: y, left: x, bottom: y + 1, right: x + 1});
      c.area++;
      c.mass += weight.a[i];
      c.left = Math.min(c.left, x);
      c.right = Math.max(c.right, x + 1);
      c.bottom = y + 1;
    }
  }
  return [...found.values()].sort((a, b) => a.label - b.label)
    .map((c) => ({...c, height: c.bottom - c.top, width: c.right - c.left}));
}

// ------------------------------------------------------------------------------------------------
// Ink

function quadraticBasis(h, w) {
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
function leastSquares(rows, values) {
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

const dot = (row, coef) => f32(row.reduce((s, v, i) => s + v * coef[i], 0));
const robust = (res, keep) => Math.max(2.5 * 1.4826 * median(res.filter((_, i) => keep[i]).map(Math.abs)), 2);

/** The paper's gray level as a quadratic surface, or a constant unless that fits clearly worse. */
function paperSurface(small, paperMask) {
  const {h, w} = small;
  const full = quadraticBasis(h, w);
  let basis = full;
  let values = Array.from(small.a);
  let paper = Array.from(paperMask.a, Boolean);
  if (h >= 16 && w >= 16) {  // every other pixel
    const every = (_, i) => Math.floor(i / w) % 2 === 0 && (i % w) % 2 === 0;
    basis = full.filter(every);
    values = values.filter(every);
    paper = paper.filter(every);
  }
  let flat = paper.some(Boolean) ? median(values.filter((_, i) => paper[i])) : median(values);
  let res = values.map((v) => f32(v - flat));
  let fitted = null;
  let coef = null;
  for (let iter = 0; iter < 2; iter++) {
    if (paper.filter(Boolean).length < basis[0].length * 4) break;
    const next = leastSquares(basis.filter((_, i) => paper[i]), values.filter((_, i) => paper[i]));
    if (!next) break;
    coef = next;
    fitted = basis.map((row) => dot(row, coef));
    res = values.map((v, i) => f32(v - fitted[i]));
    const limit = robust(res, paper);
    paper = res.map((r) => Math.abs(r) <= limit);
  }
  if (paper.some(Boolean)) flat = median(values.filter((_, i) => paper[i]));
  if (fitted && paper.some(Boolean)) {
    const spreadFit = median(res.filter((_, i) => paper[i]).map(Math.abs));
    const spreadFlat = median(values.filter((_, i) => paper[i]).map((v) => Math.abs(f32(v - flat))));
    if (spreadFit < 0.8 * spreadFlat) return plane(h, w, Float32Array.from(full, (row) => dot(row, coef)));
  }
  return plane(h, w, new Float32Array(h * w).fill(flat));
}

/** Polarity: is the ink darker than its background? (`ink_is_dark`) */
function inkIsDark(g) {
  const s = sample(g);
  const {h, w} = s;
  let coarse = g;
  if (Math.max(g.h, g.w) > 12) coarse = resize(g, ...fit(g.h, g.w, 12), 'box');
  const level = f32(median(s.a));
  const smooth = resize(coarse, w, h, 'bilinear');
  const references = [[() => level, 0.5], [(i) => smooth.a[i], 0.2]];  // even light, then local mean
  for (const [reference, cap] of references) {
    const r = s.a.map((v, i) => v - reference(i));
    const beyond = 4 * 1.4826 * median(r.map(Math.abs)) + 4;
    let darkTail = 0;
    let brightTail = 0;
    let darkCount = 0;
    let brightCount = 0;
    for (const v of r) {
      const dark = Math.max(f32(-v - f32(beyond)), 0);
      const bright = Math.max(f32(v - f32(beyond)), 0);
      darkTail += dark;
      brightTail += bright;
      darkCount += dark > 0;
      brightCount += bright > 0;
    }
    const heavy = darkTail > brightTail ? darkCount : brightCount;
    if (Math.max(darkTail, brightTail) > 3 * Math.min(darkTail, brightTail) && heavy > 0 && heavy < cap * r.length) {
      return darkTail > brightTail;
    }
  }
  const b = Math.max(1, pyRound(Math.min(h, w) / 16));
  const border = [];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = s.a[y * w + x];
      if (y < b) border.push(v);
      if (y >= h - b) border.push(v);
      if (x < b) border.push(v);
      if (x >= w - b) border.push(v);
    }
  }
  const bmed = median(border);
  const [p1, med, p99] = quantiles(s.a, [0.01, 0.5, 0.99]);
  const darkGap = bmed - p1;
  const brightGap = p99 - bmed;
  if (Math.abs(darkGap - brightGap) > 0.25 * Math.max(darkGap, brightGap, 1e-6)) return darkGap > brightGap;
  const m = f32(med);
  return sum(s.a.map((v) => { const c = f32(v - m); return f32(f32(c * c) * c); })) / s.a.length < 0;
}

/** Count of 4-neighbour changes in a 0/1 plane (the stroke-width estimate's perimeter). */
function edgeCount(p) {
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

/** The paper alone, ink bright: an opening wider than the strokes, floored by the surface (`_background`). */
function background(g, small, surface) {
  const {h: bh, w: bw} = small;
  const res = plane(bh, bw, small.a.map((v, i) => v - surface.a[i]));
  const threshold = Math.max(otsuSplit(res.a)[0], 0);
  const ink0 = map(res, (v) => (v > threshold ? 1 : 0));
  const stroke = 2 * sum(ink0.a) / Math.max(edgeCount(ink0), 1);
  const k = Math.max(3, Math.floor(Math.min(bw, bh) / 4), Math.trunc(3 * stroke) + 1) | 1;
  const {h, w} = g;
  const same = bw === w && bh === h;
  if (k > Math.floor(Math.min(bw, bh) / 2)) return same ? surface : resize(surface, w, h, 'bilinear');
  const opened = maxFilter(minFilter(small, k), k);
  let bg = boxBlur(map(opened, (v, i) => Math.max(v, surface.a[i])), 1);
  if (same) return bg;
  bg = resize(bg, w, h, 'bilinear');
  for (let i = 0; i < Math.trunc(2 * w / bw) + 1; i++) {
    bg = maxFilter(bg, 3);
    for (let j = 0; j < bg.a.length; j++) if (g.a[j] < bg.a[j]) bg.a[j] = g.a[j];
  }
  return bg;
}

/** (paper level, Otsu threshold, noise sigma) of a background-removed image (`_levels`). */
function levels(r) {
  const s = sample(r, 6000);
  const [otsu, separation] = otsuSplit(s.a);
  let paper = Array.from(s.a, (v) => separation < MIN_SEPARATION || v < otsu);
  let [q25, med, q75] = quantiles(s.a.filter((_, i) => paper[i]), [0.25, 0.5, 0.75]);
  const limit = Math.max(3 * (q75 - q25) / 1.349, 1);
  paper = paper.map((p, i) => p && Math.abs(f32(s.a[i] - med)) <= limit);
  let noise = 0;
  if (paper.some(Boolean)) {
    const blurred = boxBlur(s, 2);
    [q25, q75] = quantiles(s.a.map((v, i) => f32(v - blurred.a[i])).filter((_, i) => paper[i]), [0.25, 0.75]);
    noise = (q75 - q25) / 1.349;
  }
  return [med, otsu, noise];
}

/** For every set pixel, the length of the horizontal run of set pixels it belongs to. */
function runLengths(mask) {
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

function transpose(p) {
  const out = plane(p.w, p.h, new p.a.constructor(p.a.length));
  for (let y = 0; y < p.h; y++) for (let x = 0; x < p.w; x++) out.a[x * p.h + y] = p.a[y * p.w + x];
  return out;
}

/** Pixels of ruled or squared paper's lines: thin, straight, across most of the image (`_rules`). */
function rules(mask) {
  let found = null;
  for (const transposed of [false, true]) {
    const m = transposed ? transpose(mask) : mask;
    const {h, w} = m;
    if (w < 32 || h < 8) continue;
    const band = map(m, (v, i) => v || (i >= w && m.a[i - w]) || (i + w < m.a.length && m.a[i + w]) ? 1 : 0);
    let anyRow = false;
    for (let y = 0; y < h && !anyRow; y++) anyRow = sum(band.a.subarray(y * w, (y + 1) * w)) >= 0.6 * w;
    if (!anyRow) continue;
    const long = runLengths(band).a.map((v) => (v >= 0.6 * w ? 1 : 0));
    if (!long.some(Boolean)) continue;
    const thinLimit = Math.max(2, pyRound(0.025 * h));
    const vertical = transpose(runLengths(transpose(m)));
    let line = plane(h, w, new Uint8Array(h * w).map((_, i) => long[i] && vertical.a[i] <= thinLimit && m.a[i] ? 1 : 0));
    if (!line.a.some(Boolean)) continue;
    if (transposed) line = transpose(line);
    found = found ? map(found, (v, i) => v | line.a[i]) : line;
  }
  return found;
}

/** Background-removed ink signal, mask and components of a gray plane (`find_ink`). */
function findInk(gray) {
  let g = gray;
  const {h, w} = g;
  const [bw, bh] = Math.max(h, w) > 48 ? fit(h, w, 48) : [w, h];
  const dark = inkIsDark(g);
  if (dark) g = map(g, (v) => 255 - v);
  const small = bw !== w || bh !== h ? resize(g, bw, bh, 'box') : g;
  const split = otsuSplit(small.a)[0];
  const surface = paperSurface(small, map(small, (v) => (v < split ? 1 : 0)));
  const bg = background(g, small, surface);
  let r = map(g, (v, i) => v - bg.a[i]);
  let [med, otsu, noise] = levels(r);
  let sigma = noise;
  if (noise > NOISY) {
    r = boxBlur(r, 1);
    [med, otsu, sigma] = levels(r);
    sigma = Math.max(sigma, noise / 3);
  }
  let contrast = map(r, (v) => Math.max(f32(v - med), 0));
  const high = Math.max(otsu - med, MIN_SNR * sigma, 0.5 * MIN_CONTRAST);
  const low = Math.max(0.5 * high, 2.5 * sigma);
  const weak = plane(h, w, new Uint8Array(h * w).map((_, i) => (contrast.a[i] > f32(low) ? 1 : 0)));
  const ruled = rules(weak);
  if (ruled) {
    weak.a.forEach((v, i) => { if (ruled.a[i]) weak.a[i] = 0; });
    contrast = map(contrast, (v, i) => (ruled.a[i] ? 0 : v));
  }
  const [labels, count] = label(weak);
  const seeded = new Uint8Array(count + 1);
  labels.a.forEach((id, i) => { if (contrast.a[i] > f32(high)) seeded[id] = 1; });
  labels.a.forEach((id, i) => { if (!seeded[id]) labels.a[i] = 0; });
  const inMask = Array.from(labels.a, (id) => id > 0);
  let ink = plane(h, w);
  if (inMask.some(Boolean)) {
    const level = quantiles(contrast.a.filter((_, i) => inMask[i]), [0.75])[0];
    const floor = Math.max(2 * sigma, 0.25 * low);
    if (level > floor) ink = map(contrast, (v) => Math.min(Math.max(f32(f32(v - f32(floor)) / f32(level - floor)), 0), 1));
  }
  return {ink, labels, contrast, noise};
}

// ------------------------------------------------------------------------------------------------
// The digit

class NoDigit extends Error {}

/** Mask of the digit: the heaviest component plus the pieces that belong with it (`select_digit`). */
function selectDigit(found) {
  const {h, w} = found.labels;
  let comps = components(found.labels, found.contrast).filter((c) => c.area >= Math.max(3, pyRound(5e-5 * h * w)));
  if (!comps.length) throw new NoDigit('blank or too faint');
  const faint = Math.max(MIN_CONTRAST, 3 * found.noise);
  let strong = comps.filter((c) => c.mass >= faint * c.area);
  if (!strong.length) throw new NoDigit('only faint marks or noise');
  const contact = new Map();
  const touch = (id) => contact.set(id, (contact.get(id) ?? 0) + 1);
  for (let x = 0; x < w; x++) { touch(found.labels.a[x]); touch(found.labels.a[(h - 1) * w + x]); }
  for (let y = 0; y < h; y++) { touch(found.labels.a[y * w]); touch(found.labels.a[y * w + w - 1]); }
  const backdrop = new Set(comps.filter((c) => (contact.get(c.label) ?? 0) >= 0.15 * 2 * (h + w)).map((c) => c.label));
  if (backdrop.size) {
    const alternatives = strong.filter((c) => !backdrop.has(c.label) && Math.max(c.height, c.width) >= 0.1 * Math.max(h, w));
    if (alternatives.length) {
      strong = alternatives;
      comps = comps.filter((c) => !backdrop.has(c.label));
    }
  }
  const main = strong.reduce((best, c) => (c.mass > best.mass ? c : best));
  const keep = new Set([main.label]);
  let {top, left, bottom, right, mass} = main;
  const rest = comps.filter((c) => c !== main).sort((a, b) => b.mass - a.mass);
  let grew = true;
  while (grew && rest.length) {
    grew = false;
    for (const c of [...rest]) {
      const inside = c.top >= top && c.left >= left && c.bottom <= bottom && c.right <= right;
      if (!inside) {
        const size = Math.max(bottom - top, right - left, c.height, c.width);
        const gap = Math.max(c.top - bottom, top - c.bottom, c.left - right, left - c.right, 0);
        if (gap > 0.5 * size || c.mass < 0.02 * mass) continue;
      }
      keep.add(c.label);
      rest.splice(rest.indexOf(c), 1);
      [top, left, bottom, right] = [Math.min(top, c.top), Math.min(left, c.left), Math.max(bottom, c.bottom), Math.max(right, c.right)];
      mass += c.mass;
      grew = true;
    }
  }
  if (Math.max(bottom - top, right - left) < Math.max(6, MIN_DIGIT * Math.max(h, w))) throw new NoDigit('only specks');
  const pad = Math.max(2, Math.floor(Math.max(bottom - top, right - left) / 4));
  const region = crop(found.contrast, Math.max(top - pad, 0), Math.max(left - pad, 0), Math.min(bottom + pad, h), Math.min(right + pad, w));
  const separation = otsuSplit(region.a)[1];
  const groupArea = sum(comps.filter((c) => keep.has(c.label)).map((c) => c.area));
  const snr = mass / groupArea / Math.max(found.noise, 1e-6);
  if (separation < 0.72 || (separation < MIN_SEPARATION && snr < 8)) throw new NoDigit('only shading or noise');
  return map(found.labels, (id) => (keep.has(id) ? 1 : 0));
}

/** A crop of soft ink (0..1, ink bright) -> 28x28 uint8 framed like MNIST (`frame_digit`). */
function frameDigit(a) {
  const peak = maxOf(a.a);
  if (!(peak > 0)) throw new NoDigit('no ink in the crop');
  const level = f32(BBOX_LEVEL * peak);
  const box = bounds(a, (v) => v >= level);
  let c = crop(a, box.top, box.left, box.bottom, box.right);
  let s = BOX / Math.max(c.h, c.w);
  if (MIN_STROKE > 0 && s < 1) {
    const core = map(c, (v) => (v >= f32(0.5 * peak) ? 1 : 0));
    let border = 0;
    for (let x = 0; x < c.w; x++) border += core.a[x] + core.a[(c.h - 1) * c.w + x];
    for (let y = 0; y < c.h; y++) border += core.a[y * c.w] + core.a[y * c.w + c.w - 1];
    const width = 2 * sum(core.a) / Math.max(edgeCount(core) + 2 * border, 1);
    if (width * s < MIN_STROKE) {
      let k = Math.trunc(pyRound(MIN_STROKE / s - width)) + 1;
      k += 1 - (k % 2);
      if (k >= 3) {
        const r = k >> 1;
        const padded = plane(c.h + 2 * r, c.w + 2 * r);
        for (let y = 0; y < c.h; y++) padded.a.set(c.a.subarray(y * c.w, (y + 1) * c.w), (y + r) * padded.w + r);
        c = maxFilter(padded, k);
        s = BOX / Math.max(c.h, c.w);
      }
    }
  }
  const sw = Math.max(1, Math.min(BOX, pyRound(c.w * s)));
  const sh = Math.max(1, Math.min(BOX, pyRound(c.h * s)));
  let small = map(resize(c, sw, sh, s < 1 ? 'box' : 'bilinear'), (v) => Math.max(v, 0));
  const topValue = maxOf(small.a);
  if (!(topValue > 0)) throw new NoDigit('no ink in the crop');
  if (topValue < 1) small = map(small, (v) => f32(v / Math.max(topValue, 1e-6)));
  small = map(small, (v) => Math.min(Math.max(v, 0), 1));
  if (SOFTEN > 0 && s < 1) small = soften(small, SOFTEN); // enlarging (bilinear) softens already
  const [cy, cx] = centreOfMass(small);
  const top = Math.min(Math.max(pyRound(14 - cy), 0), SIZE - sh);
  const left = Math.min(Math.max(pyRound(14 - cx), 0), SIZE - sw);
  const out = new Uint8Array(SIZE * SIZE);
  for (let y = 0; y < sh; y++) {
    for (let x = 0; x < sw; x++) out[(top + y) * SIZE + left + x] = pyRound(f32(small.a[y * sw + x] * 255));
  }
  return out;
}

/** 3x3 gaussian blur inside the plane's own bounds (zero outside), peak back to 1 (`_soften`). */
function soften(p, sigma) {
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
function bounds(p, test = (v) => v > 0) {
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
function centreOfMass(p) {
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

/** Is this 28x28 uint8 array already an MNIST image (white on black, 20 px box, centred)? */
function isMnistFramed(a) {
  const {top, left, bottom, right, count} = bounds(plane(SIZE, SIZE, a));
  if (count === 0 || count / a.length > 0.5) return false;
  if (![19, 20, 21].includes(Math.max(bottom - top, right - left))) return false;
  const [cy, cx] = centreOfMass(plane(SIZE, SIZE, a));
  return Math.abs(cy - 14) <= 0.75 && Math.abs(cx - 14) <= 0.75;
}

/**
 * One digit in a drawing or photo (RGBA ImageData or {width, height, data}) -> 784 uint8 pixels,
 * white on black, MNIST framing; null when there is no digit (blank, noise, too faint).
 */
export function toMnist(image) {
  if (image.width === SIZE && image.height === SIZE && isOpaque(image.data)) {
    const a = Uint8Array.from(toGray(image, null).a, pyRound);
    if (isMnistFramed(a)) return a;
    const inverted = a.map((v) => 255 - v);
    if (isMnistFramed(inverted)) return inverted;
  }
  try {
    const found = findInk(workingGray(image, WORK_SIDE));
    const digit = selectDigit(found);
    const box = bounds(digit);
    const [t, b, l, r] = [Math.max(box.top - 1, 0), Math.min(box.bottom + 1, digit.h), Math.max(box.left - 1, 0), Math.min(box.right + 1, digit.w)];
    const near = maxFilter(crop(digit, t, l, b, r), 3);
    const ink = crop(found.ink, t, l, b, r);
    return frameDigit(map(ink, (v, i) => (near.a[i] ? v : 0)));
  } catch (error) {
    if (error instanceof NoDigit) return null;
    throw error;
  }
}
