// Framing (edge/preprocess/frame.py): pick the digit among the ink's components, crop it, scale it to
// 20 px, soften it, centre it by mass in 28x28.

import {
  bounds, centreOfMass, components, crop, edgeCount, f32, label, map, maxFilter, maxOf, otsuSplit, plane, pyRound,
  resize, soften, sum,
} from './filters.js';
import {isOpaque, toGray} from './load.js';
import {MIN_CONTRAST, MIN_SEPARATION, WORK_SIDE, findInk, workingGray} from './ink.js';

export const SIZE = 28;
const BOX = 20;
const MIN_STROKE = 1.6;
const BBOX_LEVEL = 0.1;
const MIN_DIGIT = 0.04;
const DASH = 0.25;
const BLOB = 0.33;
const DOT = 0.2;
const FINE_SIDE = 400;
const SOFTEN = 0.5;

export class NoDigit extends Error {}

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
  // A backdrop (long border contact) reaching all four sides is a tight crop's digit unless a larger digit lies within;
  // so are a tight crop's pieces along the border no thicker than the other strokes.
  let border = comps.filter((c) => (contact.get(c.label) ?? 0) >= 0.15 * 2 * (h + w));
  const inner = strong.filter((c) => !border.includes(c)).map((c) => c.stroke);
  if (inner.length && spans(strong, h, w)) border = border.filter((c) => c.stroke >= 2 * Math.max(...inner));
  const fills = (c) => c.top === 0 && c.left === 0 && c.bottom === h && c.right === w;
  const backdrop = new Map(border.map((c) => [c.label, fills(c) ? 0.25 : 0.1]));
  if (backdrop.size) {
    const size = Math.max(...backdrop.values()) * Math.max(h, w);
    const alternatives = strong.filter((c) => !backdrop.has(c.label) && Math.max(c.height, c.width) >= size);
    if (alternatives.length) {
      strong = alternatives;
      comps = comps.filter((c) => !backdrop.has(c.label));
    }
  }
  const whole = strong.filter((c) => !cutOff(c, h, w) && Math.max(c.height, c.width) >= 0.1 * Math.max(h, w));
  const score = (c) => c.mass * centrality(c, h, w);
  const main = (whole.length ? whole : strong).reduce((best, c) => (score(c) > score(best) ? c : best));
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
  const group = comps.filter((c) => keep.has(c.label));
  const groupArea = sum(group.map((c) => c.area));
  const snr = mass / groupArea / Math.max(found.noise, 1e-6);
  if (separation < 0.72 || (separation < MIN_SEPARATION && snr < 8)) throw new NoDigit('only shading or noise');
  // Shapes no digit has, before the model: a dash, a dot.
  const [height, width] = [bottom - top, right - left];
  if (height < DASH * width) throw new NoDigit('a dash');
  const digit = map(found.labels, (id) => (keep.has(id) ? 1 : 0));
  const thick = 2 * groupArea / Math.max(sum(group.map((c) => c.perimeter)), 1) >= BLOB * Math.max(height, width);
  if (thick && Math.max(height, width) < DOT * Math.max(h, w) && !hasHole(crop(digit, top, left, bottom, right))) throw new NoDigit('a dot');
  return digit;
}

/** Does the 0/1 ink enclose paper, a region of it that does not reach the box's edge? (`_has_hole`) */
function hasHole(ink) {
  const {h, w} = ink;
  const paper = map(ink, (v) => 1 - v);
  const [labels] = label(paper);
  return components(labels, paper).some((c) => c.top > 0 && c.left > 0 && c.bottom < h && c.right < w);
}

/** Do these components together reach all four sides of an h x w frame? (`_spans`) */
function spans(comps, h, w) {
  return Math.min(...comps.map((c) => c.top)) === 0 && Math.min(...comps.map((c) => c.left)) === 0
    && Math.max(...comps.map((c) => c.bottom)) === h && Math.max(...comps.map((c) => c.right)) === w;
}

/** Does the frame cut this component off: it touches the border without spanning the image? (`_cut_off`) */
function cutOff(c, h, w) {
  const touches = c.top === 0 || c.left === 0 || c.bottom === h || c.right === w;
  return touches && c.height < 0.9 * h && c.width < 0.9 * w;
}

/** 1 at the image's centre, 1/5 at the middle of an edge, 1/9 in a corner (`_centrality`). */
function centrality(c, h, w) {
  const dy = (c.top + c.bottom) / 2 / h - 0.5;
  const dx = (c.left + c.right) / 2 / w - 0.5;
  return 1 / (1 + 16 * (dy * dy + dx * dx));
}

/** A crop of soft ink (0..1, ink bright) -> 28x28 uint8 framed like MNIST (`frame_digit`). */
export function frameDigit(a) {
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
    const width = 2 * sum(core.a) / Math.max(edgeCount(core) + border, 1);
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
    const [found, digit] = findDigit(image);
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

/** The ink at working size and the digit's mask; a big photo with nothing credible gets a finer look (`_find_digit`). */
function findDigit(image) {
  const found = findInk(workingGray(image, WORK_SIDE));
  try {
    return [found, selectDigit(found)];
  } catch (error) {
    if (!(error instanceof NoDigit) || Math.max(image.width, image.height) < 2 * FINE_SIDE) throw error;
  }
  const fine = findInk(workingGray(image, FINE_SIDE));
  return [fine, selectDigit(fine)];
}
