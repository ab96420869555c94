// The digit model in the browser (LiteRT.js on WASM), fed and read the way its metadata says.
import {loadLiteRt, loadAndCompile, Tensor} from '@litertjs/core';
import {calibrate, rule} from './confidence.js';

// The compat build, named rather than left to LiteRT.js, which picks the relaxed-SIMD build where it can:
// the server carries only this one (edge/page.py RUNTIME), which every browser runs, iPhones included.
const RUNTIME = new URL('node_modules/@litertjs/core/wasm/litert_wasm_compat_internal.js', import.meta.url).href;

// LiteRT logs its start-up (INFO, WARNING lines) on console.error; pass on only the rest.
globalThis.Module = {printErr: (text) => { if (!/^(INFO|WARNING):/.test(text)) console.warn(text); }};

const TOP_K = 3;
// Output names in the model's signature (edge/metadata.py PROBABILITIES, FEATURES): never by position.
const PROBABILITIES = 'probabilities';
const FEATURES = 'features';

/**
 * Loads the runtime, the served model and its metadata; resolves to {meta, run(pixels)}, where run
 * gives {probabilities, features} (features only from models exported with them, as `meta.features` says).
 */
export async function loadModel() {
  const [meta] = await Promise.all([
    fetch(new URL('model.json', import.meta.url)).then((r) => r.json()),
    loadLiteRt(RUNTIME),
  ]);
  const model = await loadAndCompile(new URL('model.tflite', import.meta.url).href, {accelerator: 'wasm'});
  return {meta, run: (pixels) => outputs(model, meta, pixels), stages: (pixels) => stages(model, meta, pixels)};
}

/** Real values of a raw output tensor (edge/metadata.py dequantize). */
function dequantize(raw, spec) {
  return Float32Array.from(raw, (v) => (spec.scale === null ? v : (v - spec.zero_point) * spec.scale));
}

/** Runs the model on 784 uint8 MNIST-framed pixels; the raw typed arrays of the outputs `names`. */
async function raw(model, meta, pixels, names) {
  const {input, pixel_scaling: scaling} = meta;
  const values = Float32Array.from(pixels, (p) => p * scaling.scale + scaling.offset);
  const data = input.scale === null ? values
    : Uint8Array.from(values, (v) => Math.min(255, Math.max(0, Math.round(v / input.scale + input.zero_point))));
  const tensor = new Tensor(data, input.shape);
  const results = await model.run({[model.getInputDetails()[0].name]: tensor});
  const found = {};
  for (const name of names) found[name] = results[name].toTypedArray().slice();
  tensor.delete();
  Object.values(results).forEach((t) => t.delete());
  return found;
}

/** 784 uint8 MNIST-framed pixels -> {probabilities: 10 floats, features?: d floats} (edge/runner.py outputs). */
async function outputs(model, meta, pixels) {
  const specs = {[PROBABILITIES]: meta.output, ...(meta.features ? {[FEATURES]: meta.features} : {})};
  const found = await raw(model, meta, pixels, Object.keys(specs));
  for (const [name, spec] of Object.entries(specs)) found[name] = dequantize(found[name], spec);
  return found;
}

/** Each layer's output as stored, by stage name (edge/runner.py stages): {} for models exported without them. */
async function stages(model, meta, pixels) {
  const layers = meta.stages?.layers ?? [];
  const found = await raw(model, meta, pixels, layers.map((s) => s.output));
  return Object.fromEntries(layers.map((s) => [s.name, found[s.output]]));
}

/**
 * The same object as `predict --json` (edge/runner.py read, Reading.as_json), without "file", for the model's
 * final probabilities (adapted or not): calibrated, and "no digit" under the threshold, by `meta`'s rule.
 */
export function answer(probs, meta) {
  const {temperature, threshold} = rule(meta);
  const calibrated = calibrate(probs, temperature);
  const order = Array.from(calibrated, (p, d) => [d, p]).sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, TOP_K);
  const confidence = order[0][1];
  const round = (p) => Math.round(p * 1e4) / 1e4;
  return {digit: confidence >= threshold ? order[0][0] : null, confidence: round(confidence),
          top: order.map(([d, p]) => [d, round(p)])};
}
