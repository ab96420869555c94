// Loading (edge/preprocess/load.py): RGBA ImageData -> a float32 gray plane, alpha composited.
// The browser decodes; this stage reads its pixels as Pillow would (reduce, RGB -> L, LA).

import {f32, plane, sum} from './filters.js';

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

/** RGBA ImageData -> float32 gray plane (`to_gray`), box-shrunk by an integer factor to `maxSide`. */
export function toGray(image, maxSide) {
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
export function isOpaque(rgba) {
  for (let i = 3; i < rgba.length; i += 4) if (rgba[i] !== 255) return false;
  return true;
}

function exactMedian(values) {
  const s = values.sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
