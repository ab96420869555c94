// When the answer is "no digit": the port of edge/confidence.py, so the page and Python answer alike.
// Readers calibrate the model's final probabilities (after any adaptation) by the temperature in its
// metadata, and withhold the digit when the calibrated top probability is under its threshold.
import {baseLogits, softmax} from './adapt.js';

// Models exported without a `confidence` field answer as they always did (edge/confidence.py THRESHOLD).
const TODAYS_RULE = {temperature: 1, threshold: 0.5};

/** The model's rule: {temperature, threshold} from its metadata (edge/confidence.py Confidence.of). */
export const rule = (meta) => meta.confidence ?? TODAYS_RULE;

/** softmax(log p / T), p floored as teaching floors it; T = 1 returns the probabilities untouched. */
export function calibrate(probabilities, temperature) {
  if (temperature === 1) return probabilities;
  return Float32Array.from(softmax(baseLogits(probabilities).map((z) => z / temperature)));
}
