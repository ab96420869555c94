// Teach mode: the page asks for each digit in turn, keeps the samples in this browser only, and adapts
// the model to them (web/adapt.js, the port of edge/adapt.py). The user can see every sample, remove
// or relabel one, and "Forget" them all. No DOM here: web/app.js shows what `publish` reports.
// The samples live in IndexedDB (web/store.js).
import {adapt, apply} from './adapt.js';
import {sampleNames, samplesZip} from './samples-zip.js';
import {loadSamples, saveSamples} from './store.js';

export const ROUNDS = 3;  // each digit three times: about 30 s, and enough for a steady adaptation
const DIGITS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];

const argmax = (values) => values.reduce((best, v, i) => (v > values[best] ? i : best), 0);

/**
 * For each taught digit that the base model misread in the samples and the adapted model reads right:
 * {digit, was} with `was` the base model's most frequent reading of it. What "now reads differently" says.
 */
function changes(samples, before, after) {
  const found = [];
  for (const digit of DIGITS) {
    const was = samples.map((s, i) => (s.digit === digit && before[i] !== digit && after[i] === digit ? before[i] : null))
      .filter((d) => d !== null);
    if (was.length) found.push({digit, was: argmax(DIGITS.map((d) => was.filter((w) => w === d).length))});
  }
  return found;
}

/**
 * The teaching side of the page. `model` is web/model.js's; `ui` gives the pad's framed pixels
 * (`pixels()`: Uint8Array or null), clears the pad (`clear()`) and shows what changed (`changed(teach)`).
 * `state` is window.digitcnn, whose `teach` holds what is published.
 */
export class Teacher {
  constructor(model, ui, state) {
    this.model = model;
    this.ui = ui;
    this.state = state;
    this.samples = [];
    this.queue = [];  // digits still to ask for in this teaching session
    this.fresh = [];  // this session's samples, kept when it ends
    this.again = false;  // Next found nothing on the pad
    this.adaptation = null;
    this.issues = [];  // about the samples (edge/adapt.py review): digits with none or few, samples unlike their label
    this.differently = [];  // what the adapted model reads differently from the base model (`changes`)
    this.source = null;  // 'browser' (taught here) or 'server' (the served model's own) when adapted
    this.canTeach = Boolean(model.meta.features);
  }

  get active() {
    return this.queue.length > 0;
  }

  /** Reads the samples kept from an earlier visit, and adapts to them. */
  async load() {
    this.samples = await loadSamples();
    await this.refresh();
  }

  /** Fits the adaptation to the stored samples (else takes the served model's own), and publishes it. */
  async refresh() {
    this.adaptation = this.source = null;
    this.issues = this.differently = [];
    if (this.samples.length && this.canTeach) {
      const started = performance.now();
      const outputs = [];
      for (const sample of this.samples) outputs.push(await this.model.run(sample.pixels));
      const {adaptation, issues} = adapt(outputs.map((o) => o.features), this.samples.map((s) => s.digit),
        outputs.map((o) => o.probabilities), this.model.meta);
      this.adaptation = adaptation;
      this.issues = issues;
      this.differently = changes(this.samples, outputs.map((o) => argmax(o.probabilities)),
        outputs.map((o) => argmax(apply(adaptation, o.probabilities, o.features))));
      this.source = 'browser';
      this.state.teach.adaptMs = performance.now() - started;
    } else if (this.model.meta.adaptation) {
      this.adaptation = this.model.meta.adaptation;
      this.source = 'server';
    }
    this.publish();
  }

  /** {probabilities, adapted}: the adapted model's answer where there is an adaptation, else the base model's. */
  async probabilities(pixels) {
    const outputs = await this.model.run(pixels);
    if (!this.adaptation) return {probabilities: outputs.probabilities, adapted: false};
    return {probabilities: apply(this.adaptation, outputs.probabilities, outputs.features), adapted: true};
  }

  start() {
    this.queue = Array.from({length: ROUNDS}, () => DIGITS).flat();
    this.fresh = [];
    this.again = false;
    this.ui.clear();
    this.publish();
  }

  /** Keeps the pad's digit as a sample of the digit asked for, and asks for the next one. */
  async next() {
    if (!this.take()) {
      this.again = true;
      return this.publish();
    }
    await this.advance();
  }

  async skip() {
    this.queue.shift();
    await this.advance();
  }

  /** Ends the session early; the samples taken so far are kept, the digit on the pad included. */
  async done() {
    this.take();
    this.queue = [];
    await this.advance();
  }

  /** The pad's digit as a sample of the digit asked for; false when the pad holds none. */
  take() {
    const pixels = this.ui.pixels();
    if (pixels) this.fresh.push({digit: this.queue.shift(), pixels});
    return Boolean(pixels);
  }

  async advance() {
    this.again = false;
    this.ui.clear();
    if (this.active) return this.publish();
    // A session replaces earlier samples of the digits it taught, and keeps the other digits' samples.
    const taught = new Set(this.fresh.map((s) => s.digit));
    this.samples = [...this.samples.filter((s) => !taught.has(s.digit)), ...this.fresh];
    this.fresh = [];
    await this.keep();
  }

  /** Removes the sample at `index` (in `samples` order). */
  async remove(index) {
    this.samples.splice(index, 1);
    await this.keep();
  }

  /** Gives the sample at `index` another label. */
  async relabel(index, digit) {
    this.samples[index] = {...this.samples[index], digit};
    await this.keep();
  }

  async forget() {
    this.samples = [];
    await this.keep();
  }

  async keep() {
    await saveSamples(this.samples);
    await this.refresh();
  }

  /** The samples as a zip of <digit>_<n>.png, named as `sampleNames` names them. */
  exportSamples() {
    return samplesZip(this.samples);
  }

  /** What the page shows about teaching, in window.digitcnn.teach; then the ui shows it. */
  publish() {
    Object.assign(this.state.teach, {
      active: this.active, digit: this.active ? this.queue[0] : null, again: this.again,
      round: ROUNDS - Math.ceil(this.queue.length / DIGITS.length) + 1, rounds: ROUNDS,
      canTeach: this.canTeach, samples: this.samples.length, names: sampleNames(this.samples),
      labels: this.samples.map((s) => s.digit), adapted: Boolean(this.adaptation), source: this.source,
      issues: this.issues, differently: this.differently, adaptation: this.adaptation,
    });
    this.ui.changed(this.state.teach);
  }
}
