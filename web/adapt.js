// Teaching in the page: the port of edge/adapt.py, same arithmetic in float64, same constants, same
// records; tests/test_teach_web.py checks that both give the same adaptation for the same samples.
// A residual linear head on the model's penultimate features, fitted to the user's samples:
//   adapted logits = log(base probabilities) + W . unit(features - mean)

const DIGITS = 10;
const PENALTY = 3e-5;  // edge/adapt.py PENALTY: chosen by bench/teach_tune.py on development data
const STEPS = 300;
const ANCHOR_WEIGHT = 0.3;
const FLOOR = 1 / 512;
const FEW = 3;

/** Features centred on MNIST's mean and scaled to length 1 (Float64Array). */
function unit(features, mean) {
  const centred = Float64Array.from(features, (v, j) => v - mean[j]);
  const norm = Math.max(Math.sqrt(dot(centred, centred)), 1e-12);
  return centred.map((v) => v / norm);
}

function dot(a, b) {
  let sum = 0;
  for (let j = 0; j < a.length; j++) sum += a[j] * b[j];
  return sum;
}

export const baseLogits = (probabilities) => Float64Array.from(probabilities, (p) => Math.log(Math.max(p, FLOOR)));

export function softmax(z) {
  const top = Math.max(...z);
  const e = z.map((v) => Math.exp(v - top));
  const total = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / total);
}

const argmax = (values) => values.reduce((best, v, i) => (v > values[best] ? i : best), 0);

/**
 * W minimising the weighted cross-entropy plus PENALTY/2 |W|^2, untaught rows held at zero (edge/adapt.py _fit).
 * W is flat (DIGITS x d, row-major) and every buffer is allocated once: this loop is the page's whole fit.
 */
function fitHead(x, targets, offsets, weights, taught) {
  const d = x[0].length;
  const step = 1 / (0.5 * Math.max(...x.map((row) => dot(row, row))) + PENALTY);
  const total = weights.reduce((a, b) => a + b, 0);
  let w = new Float64Array(DIGITS * d), ahead = new Float64Array(DIGITS * d), next = new Float64Array(DIGITS * d);
  const gradient = new Float64Array(DIGITS * d), z = new Float64Array(DIGITS);
  let t = 1;
  for (let s = 0; s < STEPS; s++) {
    gradient.fill(0);
    x.forEach((row, i) => {
      for (let c = 0; c < DIGITS; c++) {
        let sum = 0;
        for (let j = 0; j < d; j++) sum += row[j] * ahead[c * d + j];
        z[c] = offsets[i][c] + sum;
      }
      const q = softmax(z);
      for (let c = 0; c < DIGITS; c++) {
        const r = (q[c] - (targets[i] === c ? 1 : 0)) * weights[i];
        for (let j = 0; j < d; j++) gradient[c * d + j] += r * row[j];
      }
    });
    for (let k = 0; k < DIGITS * d; k++) {
      next[k] = taught[Math.floor(k / d)] ? ahead[k] - step * (gradient[k] / total + PENALTY * ahead[k]) : 0;
    }
    const tNext = (1 + Math.sqrt(1 + 4 * t * t)) / 2;
    for (let k = 0; k < DIGITS * d; k++) ahead[k] = next[k] + ((t - 1) / tNext) * (next[k] - w[k]);
    [w, next] = [next, w];
    t = tNext;
  }
  return Array.from({length: DIGITS}, (_, c) => Array.from(w.subarray(c * d, (c + 1) * d)));
}

const counts = (labels) => labels.reduce((n, digit) => { n[digit]++; return n; }, new Array(DIGITS).fill(0));

/** The adaptation for samples (features, digits, base probabilities; one array each per sample), as edge/adapt.py fit. */
function fit(features, labels, probabilities, meta) {
  const stats = meta.features;
  const x = [...features.map((f) => unit(f, stats.mean)), ...stats.class_means.map((m) => Float64Array.from(m))];
  const targets = [...labels, ...Array.from({length: DIGITS}, (_, d) => d)];
  const offsets = [...probabilities.map(baseLogits), ...stats.class_log_probabilities.map((l) => Float64Array.from(l))];
  const sampleWeights = [...labels.map(() => 1), ...new Array(DIGITS).fill(ANCHOR_WEIGHT)];
  const samples = counts(labels);
  return {version: 1, samples, center: stats.mean, weights: fitHead(x, targets, offsets, sampleWeights, samples.map((n) => n > 0))};
}

/** Adapted probabilities (Float32Array) from the base model's probabilities and features (edge/adapt.py Adapter). */
export function apply(adaptation, probabilities, features) {
  const x = unit(features, adaptation.center);
  const logits = baseLogits(probabilities).map((z, c) => z + dot(x, adaptation.weights[c]));
  return Float32Array.from(softmax(logits));
}

/** What the user should know about their samples: edge/adapt.py review's records. */
export function review(features, labels, probabilities, meta) {
  const n = counts(labels);
  const issues = [];
  for (let d = 0; d < DIGITS; d++) if (n[d] === 0) issues.push({kind: 'missing', digit: d});
  for (let d = 0; d < DIGITS; d++) if (n[d] > 0 && n[d] < FEW) issues.push({kind: 'few', digit: d, count: n[d]});
  const x = features.map((f) => unit(f, meta.features.mean));
  const nearest = x.map((row, i) => {
    if (x.length === 1) return labels[i];
    const similarity = x.map((other, k) => (k === i ? -Infinity : dot(row, other)));
    return labels[argmax(similarity)];
  });
  labels.forEach((digit, i) => {
    const read = argmax(probabilities[i]);
    const alone = n[digit] === 1;
    if (read !== digit && (alone || nearest[i] === read)) {
      issues.push({kind: 'unlike', digit, index: i, reads_as: read, alone});
    }
  });
  return issues;
}

/** fit and review together: what the page needs after a teaching session. */
export function adapt(features, labels, probabilities, meta) {
  const issues = review(features, labels, probabilities, meta);
  return {adaptation: fit(features, labels, probabilities, meta), issues};
}
