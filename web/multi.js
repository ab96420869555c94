// Split a photo or drawing of a written number into its digits, in reading order: the port of
// edge/multi.py, step for step and with the same constants, so the page reads a number as
// `predict --multi` does; tests/test_web.py checks both find the same digits and pixels.
//
// Connected components of the ink mask are the first guess at digits. Pieces that sit above one
// another in the same column are one digit with a broken stroke; a blob much wider than a digit is
// two or more touching digits, cut where the ink's column profile shows a clear gap. Digits are
// grouped into lines by vertical overlap, lines read top to bottom, digits left to right.

import {components, crop, label, map, pyRound} from './preprocess/filters.js';
import {NoDigit, frameDigit} from './preprocess/frame.js';
import {findInk, workingGray} from './preprocess/ink.js';

const WORK_SIDE = 512;  // a number needs more pixels than one digit: each digit still gets 50+ px
export const MAX_ASPECT = 1.25;  // width / height above which a blob is taken for touching digits
const DIGIT_ASPECT = 0.7;  // typical width / height of one handwritten digit, to guess how many touch

const height = (b) => b.bottom - b.top;
const width = (b) => b.right - b.left;

/** numpy's median: the middle value, or the mean of the two middle ones. */
function npMedian(values) {
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Every digit in an image (RGBA ImageData or {width, height, data}), MNIST-framed, in reading order:
 * [{pixels: Uint8Array(784), box: [x, y, w, h] in the image's pixels, line}]; [] when there is no ink.
 */
export function findDigits(image) {
  const {ink, labels: seeded} = findInk(workingGray(image, WORK_SIDE));
  const [labels] = label(map(seeded, (id) => (id > 0 ? 1 : 0)));
  const comps = components(labels, ink);
  if (!comps.length) return [];
  const tallest = Math.max(...comps.map(height));
  // Specks: tiny next to the tallest stroke. Dots and short flags survive to be joined below.
  let blobs = comps.filter((c) => Math.max(c.height, c.width) >= 0.15 * tallest && c.area >= 4)
    .map((c) => ({top: c.top, left: c.left, bottom: c.bottom, right: c.right, labels: new Set([c.label])}));
  blobs = joinBrokenStrokes(blobs);
  // Pieces that remain much smaller than the digits around them are noise, not digits.
  const typical = blobs.length ? npMedian(blobs.map(height)) : 0;
  blobs = blobs.filter((b) => height(b) >= 0.4 * typical);
  const [scaleX, scaleY] = [image.width / ink.w, image.height / ink.h];
  const found = [];
  lines(blobs).forEach((row, line) => {
    for (const blob of [...row].sort((a, b) => a.left - b.left)) {
      const blobInk = crop(ink, blob.top, blob.left, blob.bottom, blob.right);
      const inBlob = crop(labels, blob.top, blob.left, blob.bottom, blob.right);
      blobInk.a.forEach((_, i) => { if (!blob.labels.has(inBlob.a[i])) blobInk.a[i] = 0; });
      for (const [left, right] of splitTouching(blob, blobInk)) {
        let pixels;
        try {
          pixels = frameDigit(crop(blobInk, 0, left - blob.left, blobInk.h, right - blob.left));
        } catch (error) {
          if (error instanceof NoDigit) continue;
          throw error;
        }
        const box = [pyRound(left * scaleX), pyRound(blob.top * scaleY), pyRound((right - left) * scaleX),
          pyRound(height(blob) * scaleY)];
        found.push({pixels, box, line});
      }
    }
  });
  return found;
}

/** Merge blobs whose columns overlap mostly and whose rows nearly touch: one broken digit. */
function joinBrokenStrokes(blobs) {
  let merged = true;
  while (merged) {
    merged = false;
    outer: for (const a of blobs) {
      for (const b of blobs) {
        if (a === b) continue;
        const overlap = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        const gap = Math.max(a.top, b.top) - Math.min(a.bottom, b.bottom);
        if (overlap >= 0.5 * Math.min(width(a), width(b)) && gap <= 0.3 * Math.max(height(a), height(b))) {
          [a.top, a.left] = [Math.min(a.top, b.top), Math.min(a.left, b.left)];
          [a.bottom, a.right] = [Math.max(a.bottom, b.bottom), Math.max(a.right, b.right)];
          b.labels.forEach((id) => a.labels.add(id));
          blobs.splice(blobs.indexOf(b), 1);
          merged = true;
          break outer;
        }
      }
    }
  }
  return blobs;
}

/** Column ranges of the digits in a blob: itself, or cuts at clear valleys of the ink profile. */
function splitTouching(blob, blobInk) {
  const w = width(blob);
  if (w <= MAX_ASPECT * height(blob)) return [[blob.left, blob.right]];
  const count = Math.max(2, pyRound(w / (DIGIT_ASPECT * height(blob))));
  const profile = new Float64Array(w);
  blobInk.a.forEach((v, i) => { profile[i % w] += v; });
  const typical = npMedian(profile.filter((v) => v > 0));
  const cuts = [];
  for (let k = 1; k < count; k++) {
    const centre = pyRound(k * w / count);
    const half = Math.max(1, pyRound(0.25 * w / count));
    const [lo, hi] = [Math.max(1, centre - half), Math.min(w - 1, centre + half)];
    if (hi <= lo) continue;
    let col = lo;
    for (let c = lo + 1; c < hi; c++) if (profile[c] < profile[col]) col = c;
    if (profile[col] <= 0.35 * typical) cuts.push(col);  // a clear gap: few ink pixels
  }
  const edges = [0, ...cuts, w];
  return edges.slice(1).map((b, i) => [blob.left + edges[i], blob.left + b]).filter(([a, b]) => b - a >= 2);
}

/** Group blobs into text lines: a blob joins a line when it overlaps the line's rows by half. */
function lines(blobs) {
  const found = [];
  for (const blob of [...blobs].sort((a, b) => (a.top + a.bottom) - (b.top + b.bottom))) {
    const line = found.find((l) => {
      const top = Math.min(...l.map((b) => b.top));
      const bottom = Math.max(...l.map((b) => b.bottom));
      return Math.min(bottom, blob.bottom) - Math.max(top, blob.top) >= 0.5 * Math.min(height(blob), bottom - top);
    });
    if (line) line.push(blob);
    else found.push([blob]);
  }
  return found;
}

/**
 * The answer for a number (edge/predict.py _read_number): `found` from findDigits, `answers` one
 * web/model.js answer per digit. "?" stands for a digit the model is not sure of; lines are joined by "\n".
 */
export function numberAnswer(found, answers) {
  const rows = new Map();
  const digits = found.map((d, i) => {
    rows.set(d.line, (rows.get(d.line) ?? '') + (answers[i].digit === null ? '?' : String(answers[i].digit)));
    return {...answers[i], box: d.box, line: d.line};
  });
  const number = [...rows.keys()].sort((a, b) => a - b).map((k) => rows.get(k)).join('\n');
  const best = answers.length ? Math.min(...answers.map((a) => a.confidence)) : 0;
  return {number, digits, digit: null, confidence: pyRound(best * 1e4) / 1e4, top: []};
}
