// The port of edge/inside.py: each layer's stored int8 values, the first convolution's arithmetic at one
// position, the multiply-adds per layer, all from the model file (its outputs and its constants);
// plus a hand-made Sobel filter on the same digit, for comparison. tests/test_inside_web.py checks the
// numbers against Python's.
import {readTflite} from './tflite.js';

const STORED_OFFSET = 128;  // edge/inside.py: stage outputs are uint8 copies of int8 tensors
const SIDE = 28;
const SOBEL = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]];  // finds edges running up and down

/** Rows (or columns) of padding before the image: TFLite's SAME pads the odd one after. */
const padding = (spec, size, out, kernel, stride) =>
  (spec.padding === 'same' ? Math.floor(Math.max((out - 1) * stride + kernel - size, 0) / 2) : 0);

export class Stages {
  /** `meta`: the model's metadata; `bytes`: the .tflite file (Uint8Array) whose constants are read. */
  constructor(meta, bytes) {
    this.meta = meta;
    this.specs = meta.stages.layers;
    const tensor = readTflite(bytes);
    this.weights = {};
    for (const spec of this.specs) {
      if (spec.kind !== 'conv' && spec.kind !== 'dense') continue;
      const w = tensor(spec.weights_tensor);
      this.weights[spec.name] = {...w, bias: tensor(spec.bias_tensor).values};
    }
    this.first = this.specs.find((s) => s.kind === 'conv');
  }

  spec(name) {
    return this.specs.find((s) => s.name === name);
  }

  /** Raw stage outputs (uint8, by name) -> the int8 values the device stored, as Int16Arrays. */
  stored(raw) {
    return Object.fromEntries(Object.entries(raw).map(
      ([name, u]) => [name, Int16Array.from(u, (v) => v - STORED_OFFSET)]));
  }

  /** The int8 zero point of a stage. */
  zeroPoint(name) {
    return this.spec(name).zero_point - STORED_OFFSET;
  }

  /** The real number one stored value stands for: scale x (q - zero point). */
  real(name, q) {
    return this.spec(name).scale * (q - this.zeroPoint(name));
  }

  /** Multiply-adds of each conv and dense layer for one digit (edge/inside.py multiply_adds). */
  multiplyAdds() {
    const counts = {};
    for (const spec of this.specs) {
      const w = this.weights[spec.name];
      if (!w) continue;
      const product = (list) => list.reduce((a, b) => a * b, 1);
      counts[spec.name] = product(spec.shape.slice(1)) * product(w.shape.slice(1));
    }
    return counts;
  }

  /** The first filter `channel`'s real weights, kernel rows by columns. */
  filter(channel) {
    const w = this.weights[this.first.name];
    const [, kh, kw] = w.shape;
    return Array.from({length: kh}, (_, i) => Array.from({length: kw},
      (_, j) => w.values[(channel * kh + i) * kw + j] * w.scales[channel]));
  }

  /**
   * The first convolution at output (y, x) of filter `channel`, written out (edge/inside.py arithmetic):
   * inputs under the filter, weights, products, their sum, the bias, the activation, the requantized value.
   */
  arithmetic(pixels, stored, y, x, channel) {
    const spec = this.first;
    const w = this.weights[spec.name];
    const [[kh, kw], [sh, sw]] = [spec.kernel, spec.stride];
    const [, oh, ow, channels] = spec.shape;
    const {input} = this.meta;
    const top = padding(spec, SIDE, oh, kh, sh);
    const left = padding(spec, SIDE, ow, kw, sw);
    const scale = input.scale * w.scales[channel];
    let accumulator = w.bias[channel];
    const inputs = [];
    const weights = [];
    const products = [];
    for (let i = 0; i < kh; i++) {
      const [inRow, wRow, pRow] = [[], [], []];
      for (let j = 0; j < kw; j++) {
        const [r, c] = [y * sh + i - top, x * sw + j - left];
        const q = r >= 0 && r < SIDE && c >= 0 && c < SIDE ? this.inputValue(pixels[r * SIDE + c]) : 0;
        const qw = w.values[(channel * kh + i) * kw + j];
        accumulator += q * qw;
        inRow.push(q * input.scale);
        wRow.push(qw * w.scales[channel]);
        pRow.push(q * qw * scale);
      }
      inputs.push(inRow);
      weights.push(wRow);
      products.push(pRow);
    }
    const total = accumulator * scale;
    const relu = spec.activation === 'relu';
    const zeroPoint = this.zeroPoint(spec.name);
    const requantized = Math.min(127, Math.max(relu ? zeroPoint : -128,
      roundEven(accumulator * (scale / spec.scale)) + zeroPoint));
    return {layer: spec.name, y, x, filter: channel, inputs, weights, products,
      sum: (accumulator - w.bias[channel]) * scale, bias: w.bias[channel] * scale, total,
      activation: spec.activation, activated: relu ? Math.max(total, 0) : total, requantized,
      stored: stored[spec.name][(y * ow + x) * channels + channel], scale: spec.scale, zeroPoint};
  }

  /** One pixel as the model's input integer minus its zero point (edge/metadata.py model_input). */
  inputValue(pixel) {
    const {input, pixel_scaling: scaling} = this.meta;
    return Math.round((pixel * scaling.scale + scaling.offset) / input.scale);
  }
}

/** numpy's rint: halves go to the even neighbour. */
function roundEven(v) {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The 2x2 block of the pooling's input behind pooled value (y, x, channel), and the value kept. */
export function poolBlock(stages, stored, pool, y, x, channel) {
  const spec = stages.spec(pool);
  const source = stages.specs[stages.specs.indexOf(spec) - 1];
  const [, , w, channels] = source.shape;
  const [kh, kw] = spec.kernel;
  const block = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      block.push(stored[source.name][((y * spec.stride[0] + i) * w + x * spec.stride[1] + j) * channels + channel]);
    }
  }
  const [, , pw, pc] = spec.shape;
  return {source: source.name, block, kept: stored[pool][(y * pw + x) * pc + channel]};
}

/** The Sobel filter slid over the digit's real values (pixel / 255), zeros around it: 28 x 28, row-major. */
export function sobel(pixels) {
  const out = new Float32Array(SIDE * SIDE);
  for (let y = 0; y < SIDE; y++) {
    for (let x = 0; x < SIDE; x++) {
      let sum = 0;
      for (let i = -1; i <= 1; i++) {
        for (let j = -1; j <= 1; j++) {
          const [r, c] = [y + i, x + j];
          if (r >= 0 && r < SIDE && c >= 0 && c < SIDE) sum += SOBEL[i + 1][j + 1] * pixels[r * SIDE + c] / 255;
        }
      }
      out[y * SIDE + x] = sum;
    }
  }
  return out;
}
