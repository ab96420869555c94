// Teach mode: the page asks for each digit in turn, keeps the samples in this browser only, and adapts
// the model to them (web/adapt.js, the port of edge/adapt.py). "Forget" deletes them.
import {adapt, apply, describe} from './adapt.js';
import {samplesZip} from './samples-zip.js';
import {loadSamples, saveSamples} from './store.js';

const ROUNDS = 3;  // each digit three times: about 30 s, and enough for a steady adaptation
const DIGITS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];

/**
 * The teaching side of the page. `model` is web/model.js's; `ui` gives the pad's framed pixels
 * (`pixels()`: Uint8Array or null), clears it (`clear()`), shows a prompt (`prompt(text)`) and
 * reports what changed (`changed()`). `state` is window.digitcnn, where tests read `teach`.
 */
export class Teacher {
  constructor(model, ui, state) {
    this.model = model;
    this.ui = ui;
    this.state = state;
    this.samples = [];
    this.loaded = loadSamples().then((samples) => { this.samples = samples; });  // IndexedDB (web/store.js)
    this.queue = [];  // digits still to ask for in this teaching session
    this.adaptation = null;
    this.issues = [];  // about the samples (edge/adapt.py review): digits with none or few, samples unlike their label
    this.source = null;  // 'this phone' or 'the server' when adapted
    this.canTeach = Boolean(model.meta.features);
  }

  get active() {
    return this.queue.length > 0;
  }

  /** Fits the adaptation to the stored samples (else takes the served model's own), and publishes it. */
  async refresh() {
    await this.loaded;
    this.adaptation = this.source = null;
    this.issues = [];
    if (this.samples.length && this.canTeach) {
      const started = performance.now();
      const outputs = [];
      for (const sample of this.samples) outputs.push(await this.model.run(sample.pixels));
      const {adaptation, issues} = adapt(outputs.map((o) => o.features), this.samples.map((s) => s.digit),
        outputs.map((o) => o.probabilities), this.model.meta);
      this.adaptation = adaptation;
      this.issues = issues;
      this.source = 'this phone';
      this.state.teach.adaptMs = performance.now() - started;
    } else if (this.model.meta.adaptation) {
      this.adaptation = this.model.meta.adaptation;
      this.source = 'the server';
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
    this.ui.clear();
    this.publish();
  }

  /** Keeps the pad's digit as a sample of the digit asked for, and asks for the next one. */
  async next() {
    const pixels = this.ui.pixels();
    if (!pixels) {
      this.ui.prompt(`no digit found: write ${this.queue[0]} again`);
      return;
    }
    this.fresh.push({digit: this.queue.shift(), pixels});
    await this.advance();
  }

  async skip() {
    this.queue.shift();
    await this.advance();
  }

  /** Ends the session early; the samples taken so far are kept. */
  async done() {
    this.queue = [];
    await this.advance();
  }

  async advance() {
    this.ui.clear();
    if (this.active) return this.publish();
    // A session replaces earlier samples of the digits it taught, and keeps the other digits' samples.
    const taught = new Set(this.fresh.map((s) => s.digit));
    this.samples = [...this.samples.filter((s) => !taught.has(s.digit)), ...this.fresh];
    this.fresh = [];
    await saveSamples(this.samples);
    await this.refresh();
  }

  async forget() {
    this.samples = [];
    await saveSamples(this.samples);
    await this.refresh();
  }

  exportSamples() {
    return samplesZip(this.samples);
  }

  /** What the page says about teaching, in the DOM and in window.digitcnn.teach. */
  publish() {
    const round = ROUNDS - Math.ceil(this.queue.length / DIGITS.length) + 1;
    Object.assign(this.state.teach, {
      active: this.active, digit: this.active ? this.queue[0] : null, samples: this.samples.length,
      adapted: Boolean(this.adaptation), source: this.source, issues: this.issues, adaptation: this.adaptation,
    });
    if (this.active) this.ui.prompt(`write ${this.queue[0]}  (round ${round} of ${ROUNDS})`);
    const taught = this.adaptation
      ? `adapted model: taught on ${this.source}${this.source === 'this phone' ? ` with ${this.samples.length} samples` : ''}`
      : (this.canTeach ? 'base model: Teach adapts it to your handwriting'
        : 'base model: this model cannot be taught (re-export it with `cli.py export`)');
    this.ui.changed({active: this.active, canTeach: this.canTeach, samples: this.samples.length,
                     says: [taught, ...this.issues.map((issue) => describe(issue, `sample ${issue.index + 1}`))].join('; ')});
  }
}
