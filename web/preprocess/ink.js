// Ink (edge/preprocess/ink.py): a gray working plane -> which pixels are ink (bright), after paper,
// light and ruled lines are removed.

import {
  boxBlur, components, f32, fit, label, leastSquares, map, maxFilter, median, medianFilter, minFilter, otsuSplit, plane, pyRound,
  quadraticBasis, quantiles, resize, runLengths, subsample, sum, transpose,
} from './filters.js';
import {toGray} from './load.js';

export const WORK_SIDE = 200;
const MIN_WORK_SIDE = 64;
export const MIN_CONTRAST = 16;
const MIN_SNR = 5;
export const MIN_SEPARATION = 0.8;
const LOCAL_PAPER = 7;
const COARSE = 24;
const NOISY = 4;

/** `working_gray`: long side at most `maxSide`, tiny images upscaled (bicubic) to 64 px. */
export function workingGray(image, maxSide) {
  const g = toGray(image, maxSide);
  if (Math.max(g.h, g.w) >= MIN_WORK_SIDE) return g;
  const [w, h] = fit(g.h, g.w, MIN_WORK_SIDE);
  return map(resize(g, w, h, 'bicubic'), (v) => Math.min(255, Math.max(0, v)));
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
  const s = subsample(g);
  const {h, w} = s;
  const paper = medianFilter(s, LOCAL_PAPER);
  const byLocalPaper = heavyTail(s.a.map((v, i) => v - paper.a[i]), 0.2);
  if (byLocalPaper !== null) return byLocalPaper;
  const level = f32(median(s.a));
  const centred = s.a.map((v) => v - level);
  const byMedian = heavyTail(centred, 0.2) ?? heavyTail(centred, 0.5);  // a broad tail: bold ink, or lit paper
  if (byMedian !== null) return byMedian;
  const [threshold, separation] = otsuSplit(s.a);
  const bright = Uint8Array.from(s.a, (v) => (v >= f32(threshold) ? 1 : 0));
  const share = sum(bright) / bright.length;
  if (separation >= MIN_SEPARATION && share >= 0.1 && share <= 0.9) {  // two clean levels: a tight crop
    const darkHoled = hasHoles(plane(h, w, bright.map((v) => 1 - v)));
    const brightHoled = hasHoles(plane(h, w, bright));
    if (darkHoled !== brightHoled) return brightHoled;
    const border = [...bright.subarray(0, w), ...bright.subarray((h - 1) * w)];
    for (let y = 1; y < h - 1; y++) border.push(bright[y * w]);
    for (let y = 1; y < h - 1; y++) border.push(bright[y * w + w - 1]);
    const owned = sum(border) / border.length;
    if (Math.abs(owned - 0.5) > 0.1) return owned > 0.5;
  }
  let coarse = g;
  if (Math.max(g.h, g.w) > 12) coarse = resize(g, ...fit(g.h, g.w, 12), 'box');
  const smooth = resize(coarse, w, h, 'bilinear');
  const byLocalMean = heavyTail(s.a.map((v, i) => v - smooth.a[i]), 0.2);
  if (byLocalMean !== null) return byLocalMean;
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

/** Could this 0/1 level be paper seen through holes: it reaches the border and also lies in a region
 * (over 1% of the image) that does not? (`_has_holes`) */
function hasHoles(level) {
  const {h, w} = level;
  let reaches = false;
  for (let x = 0; x < w; x++) reaches ||= Boolean(level.a[x] || level.a[(h - 1) * w + x]);
  for (let y = 0; y < h; y++) reaches ||= Boolean(level.a[y * w] || level.a[y * w + w - 1]);
  if (!reaches) return false;
  const [labels] = label(level);
  return components(labels, level)
    .some((c) => c.area >= 0.01 * h * w && c.top > 0 && c.left > 0 && c.bottom < h && c.right < w);
}

/** Is the ink dark, by which tail of `r` (gray minus a reference) is heavy? null if unclear (`_heavy_tail`). */
function heavyTail(r, cap) {
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
  return null;
}

/** Stroke width of a rough ink mask, broad backdrops (shadows, tables) left out (`_stroke_width`). */
function strokeWidth(ink, thin) {
  const horizontal = runLengths(ink);
  const vertical = transpose(runLengths(transpose(ink)));
  const broad = map(ink, (v, i) => (v && Math.min(horizontal.a[i], vertical.a[i]) > thin ? 1 : 0));
  const {h, w} = ink;
  const [labels, count] = label(ink);
  const along = [];  // the labels on the border
  for (let x = 0; x < w; x++) along.push(labels.a[x], labels.a[(h - 1) * w + x]);
  for (let y = 1; y < h - 1; y++) along.push(labels.a[y * w], labels.a[y * w + w - 1]);
  const contact = new Int32Array(count + 1);
  for (const id of along) contact[id]++;
  const backdrop = new Uint8Array(count + 1);
  for (const c of components(labels, broad)) {  // nearly all broad from the border, or along a side; not spanning
    backdrop[c.label] = ((c.mass >= 0.9 * c.area && contact[c.label] > 0) || contact[c.label] >= Math.max(h, w))
      && !(c.height >= 0.9 * h && c.width >= 0.9 * w);
  }
  let strokes = map(ink, (v, i) => (v && !(broad.a[i] && backdrop[labels.a[i]]) ? 1 : 0));
  // Backdrop pixels on the border: a shadow lies along it, a tight crop's bold 1 does not.
  if (sum(strokes.a) < Math.floor(Math.max(h, w) / 4) && sum(along.map((id) => backdrop[id])) < Math.max(h, w)) {
    strokes = ink;
  }
  let outline = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      if (y + 1 < h) outline += (strokes.a[i] && !ink.a[i + w]) + (strokes.a[i + w] && !ink.a[i]);
      if (x + 1 < w) outline += (strokes.a[i] && !ink.a[i + 1]) + (strokes.a[i + 1] && !ink.a[i]);
    }
  }
  return 2 * sum(strokes.a) / Math.max(outline, 1);
}

/** A page's stroke width against the wide median, null if not a page: mostly paper (rough ink under a
 * tenth), thin strokes; measured only on mostly paper, where it can decide something (`_page_strokes`). */
function pageStrokes(rough, side) {
  if (sum(rough.a) / rough.a.length >= 0.1) return null;
  const thin = strokeWidth(rough, Math.floor(side / 4));
  return Math.trunc(3 * thin) + 1 <= Math.floor(side / 4) ? thin : null;
}

/** Which pixels of a 0/1 plane belong to its parts (8-connected) touching the border (`_from_border`). */
function fromBorder(mask) {
  const {h, w} = mask;
  const [labels, count] = label(mask);
  const keep = new Uint8Array(count + 1);
  for (let x = 0; x < w; x++) keep[labels.a[x]] = keep[labels.a[(h - 1) * w + x]] = 1;
  for (let y = 0; y < h; y++) keep[labels.a[y * w]] = keep[labels.a[y * w + w - 1]] = 1;
  keep[0] = 0;
  return labels.a.map((id) => keep[id]);
}

/** Ink at a glance, for measuring strokes: above a background by more than Otsu's split (`_rough_ink`). */
function roughInk(res) {
  const threshold = Math.max(otsuSplit(res.a)[0], 0);
  return map(res, (v) => (v > threshold ? 1 : 0));
}

/** The paper alone, ink bright: an opening wider than the strokes, floored by the surface; when strokes
 * are thin, a median over half the image where it is well above, in regions from the border (`_background`). */
function background(g, small, surface) {
  const {h: bh, w: bw} = small;
  const side = Math.min(bw, bh);
  const coarse = Math.max(bw, bh) > COARSE ? resize(small, ...fit(bh, bw, COARSE), 'box') : small;  // cheap
  let wide = medianFilter(coarse, Math.floor(Math.min(coarse.h, coarse.w) / 2) | 1, 'reflect');
  if (wide.h !== bh || wide.w !== bw) wide = resize(wide, bw, bh, 'bilinear');
  const thin = pageStrokes(roughInk(plane(bh, bw, small.a.map((v, i) => v - wide.a[i]))), side);
  const page = thin !== null;
  let stroke = strokeWidth(roughInk(plane(bh, bw, small.a.map((v, i) => v - surface.a[i]))), Math.floor(side / 4));
  if (Math.trunc(3 * stroke) + 1 > Math.floor(side / 2) && page) stroke = thin;  // a shadow taken for a bold stroke
  const k = Math.max(3, Math.floor(side / 4), Math.trunc(3 * stroke) + 1) | 1;
  const {h, w} = g;
  const same = bw === w && bh === h;
  if (k > Math.floor(side / 2)) return same ? surface : resize(surface, w, h, 'bilinear');
  const opened = maxFilter(minFilter(small, k), k);
  const floored = map(opened, (v, i) => Math.max(v, surface.a[i]));
  if (page) {  // where the median is well above, coming in from the border
    const raised = fromBorder(map(floored, (v, i) => (f32(wide.a[i] - v) > 2 * MIN_CONTRAST ? 1 : 0)));
    floored.a.forEach((v, i) => { if (raised[i]) floored.a[i] = wide.a[i]; });
  }
  let bg = boxBlur(floored, 1);
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
  const s = subsample(r, 6000);
  const [otsu, separation] = otsuSplit(s.a);
  let paper = Array.from(s.a, (v) => separation < MIN_SEPARATION || v < otsu);
  let [q25, med, q75] = quantiles(s.a.filter((_, i) => paper[i]), [0.25, 0.5, 0.75]);
  const limit = Math.max(3 * (q75 - q25) / 1.349, 1);
  paper = paper.map((p, i) => p && Math.abs(f32(s.a[i] - med)) <= limit);
  let noise = 0;
  if (paper.some(Boolean)) {
    const weight = plane(s.h, s.w, Float32Array.from(paper, Number));
    const inked = boxBlur(plane(s.h, s.w, s.a.map((v, i) => v * weight.a[i])), 2);
    const share = boxBlur(weight, 2);
    const local = inked.a.map((v, i) => v / Math.max(share.a[i], f32(1e-6)));  // the paper's own mean, ink left out
    [q25, q75] = quantiles(s.a.map((v, i) => f32(v - local[i])).filter((_, i) => paper[i]), [0.25, 0.75]);
    noise = (q75 - q25) / 1.349;
  }
  return [med, otsu, noise];
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
export function findInk(gray) {
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
