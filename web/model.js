// The digit model in the browser (LiteRT.js on WASM), fed and read the way its metadata says.
import {loadLiteRt, loadAndCompile, Tensor} from '@litertjs/core';

// LiteRT logs its start-up (INFO, WARNING lines) on console.error; pass on only the rest.
globalThis.Module = {printErr: (text) => { if (!/^(INFO|WARNING):/.test(text)) console.warn(text); }};

const TOP_K = 3;
const THRESHOLD = 0.5;  // as edge/runner.py: under this confidence the answer is "no digit"

/** Loads the runtime, the served model and its metadata; resolves to {read(pixels)}. */
export async function loadModel() {
  const [meta] = await Promise.all([
    fetch('/model.json').then((r) => r.json()),
    loadLiteRt('/node_modules/@litertjs/core/wasm/'),
  ]);
  const model = await loadAndCompile('/model.tflite', {accelerator: 'wasm'});
  return {meta, read: async (pixels) => answer(await probabilities(model, meta, pixels))};
}

/** 784 uint8 MNIST-framed pixels -> 10 probabilities (edge/metadata.py model_input, probabilities). */
async function probabilities(model, meta, pixels) {
  const {input, output, pixel_scaling: scaling} = meta;
  const values = Float32Array.from(pixels, (p) => p * scaling.scale + scaling.offset);
  const data = input.scale === null ? values
    : Uint8Array.from(values, (v) => Math.min(255, Math.max(0, Math.round(v / input.scale + input.zero_point))));
  const tensor = new Tensor(data, input.shape);
  const [result] = await model.run(tensor);
  const raw = result.toTypedArray();
  tensor.delete();
  result.delete();
  return Array.from(raw, (v) => (output.scale === null ? v : (v - output.zero_point) * output.scale));
}

/** The same object as `predict --json` (edge/runner.py Reading.as_json), without "file". */
export function answer(probs) {
  const order = probs.map((p, d) => [d, p]).sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, TOP_K);
  const confidence = order[0][1];
  const round = (p) => Math.round(p * 1e4) / 1e4;
  return {digit: confidence >= THRESHOLD ? order[0][0] : null, confidence: round(confidence),
          top: order.map(([d, p]) => [d, round(p)])};
}
