// The Inside view: the article's eight facts about a CNN, shown on the reader's own digit, live, with the
// numbers of the model file this page runs (its int8 stage outputs and constants: web/inside/stages.js).
// app.js hands each reading over with a `reading` event; nothing is computed while the view is closed.
import {addStrings, LOCALES, locale, setLocale, t, translate} from '../i18n.js';
import {apply} from '../adapt.js';
import {calibrate, rule} from '../confidence.js';
import strings from '../strings/inside.js';
import {poolBlock, sobel, Stages} from './stages.js';

addStrings(strings);

const SIDE = 28;
const COLUMNS = 8;  // maps per row in a layer's mosaic
const SCAN_MS = 180;  // the flashlight's step while it plays
const ZOOM = 8;  // screen pixels per input pixel on the flashlight canvas

const el = (tag, {dataset = {}, ...props} = {}, children = []) => {
  const node = Object.assign(document.createElement(tag), props);
  Object.assign(node.dataset, dataset);
  node.append(...children);
  return node;
};
const text = (tag, key, props = {}) => el(tag, {...props, dataset: {i18n: key}});
const fixed = (v, digits = 3) => (Math.abs(v) < 5e-4 ? 0 : v).toFixed(digits);

/** Paints values (row-major, h x w) on a canvas of that size: ink colours, or blue-white-red when signed. */
function paint(canvas, values, h, w, signed) {
  canvas.width = w;
  canvas.height = h;
  const context = canvas.getContext('2d');
  const image = context.createImageData(w, h);
  let top = 0;
  for (const v of values) top = Math.max(top, Math.abs(v));
  top ||= 1;
  const data = image.data;
  values.forEach((v, i) => {
    const a = Math.abs(v) / top;
    const [r, g, b] = signed ? (v >= 0 ? [255, 255 * (1 - a), 255 * (1 - a)] : [255 * (1 - a), 255 * (1 - a), 255])
      : [255 * Math.min(1, 2 * a), 255 * Math.max(0, 2 * a - 1) * 0.85, 40 * a];
    data[4 * i] = r;
    data[4 * i + 1] = g;
    data[4 * i + 2] = b;
    data[4 * i + 3] = Number.isNaN(v) ? 0 : 255;
  });
  context.putImageData(image, 0, 0);
}

/** One layer's maps side by side, COLUMNS a row, NaN (transparent) between them. */
function mosaic(values, h, w, channels, real) {
  const rows = Math.ceil(channels / COLUMNS);
  const [mh, mw] = [rows * (h + 1) - 1, COLUMNS * (w + 1) - 1];
  const out = new Float32Array(mh * mw).fill(NaN);
  for (let k = 0; k < channels; k++) {
    const [oy, ox] = [Math.floor(k / COLUMNS) * (h + 1), (k % COLUMNS) * (w + 1)];
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) out[(oy + y) * mw + ox + x] = real(values[(y * w + x) * channels + k]);
    }
  }
  return [out, mh, mw];
}

function bars(list, probabilities, answer) {
  list.replaceChildren(...Array.from(probabilities, (p, d) => {
    const bar = el('span', {className: 'bar'});
    bar.style.width = `${Math.max(1, p * 100)}%`;
    return el('li', {className: d === answer ? 'kept' : ''}, [el('span', {className: 'label'}, [`${d}`]),
      el('span', {className: 'track'}, [bar]), el('span', {className: 'value'}, [`${(p * 100).toFixed(1)}%`])]);
  }));
}

const argmax = (values) => values.reduce((best, v, i) => (v > values[best] ? i : best), 0);

class InsideView {
  constructor(section, getTeacher) {
    this.section = section;
    this.getTeacher = getTeacher;
    this.reading = null;
    this.stages = null;
    this.filter = 0;
    this.position = 0;  // index into the first map (y * width + x) under the flashlight
    this.timer = null;
    this.state = window.digitcnn.inside = {ready: false, animating: false, updateMs: []};
    this.scratch = el('canvas');  // the first map at its own size, before it is zoomed
    this.motion = matchMedia('(prefers-reduced-motion: reduce)');
    this.build();
    this.motion.addEventListener('change', () => this.animate());
    window.addEventListener('localechange', () => {
      this.animate();  // the Play / Pause label
      this.render();
    });
  }

  build() {
    const $ = (name, node) => { this[name] = node; return node; };
    const fact = (key, ...children) => el('article', {className: 'fact'}, [text('h3', `inside.${key}.title`),
      text('p', `inside.${key}.text`, {className: 'caption'}), ...children]);
    this.section.replaceChildren(
      text('h2', 'inside.title', {id: 'inside-title'}),
      text('p', 'inside.intro'),
      $('summary', el('p', {className: 'summary', role: 'status'})),
      fact('matrix', $('matrix', el('canvas', {className: 'cells', tabIndex: 0, role: 'img'})),
        $('cell', el('output', {className: 'cell'}))),
      fact('filter',
        el('div', {className: 'controls'}, [el('label', {}, [text('span', 'inside.filter.pick'),
          $('picker', el('input', {type: 'range', min: 0, max: 0, value: 0}))]),
        $('play', el('button', {type: 'button'}))]),
        el('div', {className: 'row'}, [
          el('figure', {}, [$('light', el('canvas', {className: 'light', role: 'img'}))]),
          el('figure', {}, [$('kernel', el('canvas', {className: 'kernel', role: 'img'}))]),
          el('figure', {}, [$('map', el('canvas', {className: 'map', tabIndex: 0, role: 'img'}))]),
        ]),
        $('sum', el('div', {className: 'sum', role: 'status'})),
        text('h4', 'inside.sobel.title'), text('p', 'inside.sobel.text', {className: 'caption'}),
        $('sobel', el('canvas', {className: 'map', role: 'img', dataset: {i18nLabel: 'inside.sobel.label'}}))),
      fact('layers', $('layers', el('div', {className: 'layers'}))),
      fact('pool', $('pool', el('div', {className: 'pool'})), $('poolText', el('p'))),
      fact('dense',
        el('figure', {}, [$('flat', el('canvas', {className: 'strip', role: 'img'})),
          $('flatCaption', el('figcaption'))]),
        el('figure', {}, [$('features', el('canvas', {className: 'strip', role: 'img'})),
          $('featuresCaption', el('figcaption'))]),
        text('p', 'inside.dense.bars'), $('chances', el('ol', {className: 'chances'}))),
      fact('teach', $('teach', el('div', {className: 'compare'}))),
      fact('int8', $('int8', el('p')), $('size', el('p'))),
      fact('gpu', $('gpu', el('ul')), $('gpuTotal', el('p'))),
    );
    this.picker.addEventListener('input', () => {
      this.filter = Number(this.picker.value);
      this.settle();
      this.draw();
    });
    this.play.addEventListener('click', () => { this.paused = !this.paused; this.animate(); });
    const pick = (canvas, side) => (e) => {
      const box = canvas.getBoundingClientRect();
      const [x, y] = [(e.clientX - box.left) / box.width, (e.clientY - box.top) / box.height];
      return [Math.min(side - 1, Math.floor(y * side)), Math.min(side - 1, Math.floor(x * side))];
    };
    this.matrix.addEventListener('pointermove', (e) => { this.showCell(...pick(this.matrix, SIDE)(e)); });
    this.matrix.addEventListener('pointerdown', (e) => { this.showCell(...pick(this.matrix, SIDE)(e)); });
    this.matrix.addEventListener('keydown',
      (e) => this.arrows(e, SIDE, this.cellAt ?? [0, 0], (y, x) => this.showCell(y, x)));
    for (const canvas of [this.map, this.light]) {
      canvas.addEventListener('pointerdown', (e) => {
        const [, oh, ow] = this.stages?.first.shape ?? [0, 1, 1];
        const [y, x] = pick(canvas, canvas === this.map ? oh : SIDE)(e);
        const onMap = canvas === this.map;  // else the light's canvas: the digit, in input pixels
        this.choose(onMap ? y : Math.floor(y * oh / SIDE), onMap ? x : Math.floor(x * ow / SIDE));
      });
    }
    this.map.addEventListener('keydown', (e) => {
      const [, , ow] = this.stages.first.shape;
      this.arrows(e, ow, [Math.floor(this.position / ow), this.position % ow], (y, x) => this.choose(y, x));
    });
    translate(this.section);
  }

  /** Arrow keys move a cursor over a side x side grid. */
  arrows(e, side, [y, x], move) {
    const step = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]}[e.key];
    if (!step) return;
    e.preventDefault();
    move(Math.min(side - 1, Math.max(0, y + step[0])), Math.min(side - 1, Math.max(0, x + step[1])));
  }

  /** The flashlight stops at output (y, x): a tap or a key chose it. */
  choose(y, x) {
    this.paused = this.chosen = true;
    this.position = y * this.stages.first.shape[2] + x;
    this.animate();
    this.draw();
  }

  /** A light that is not moving, and not placed by the reader, rests where its filter responds most. */
  settle() {
    if (this.timer || this.chosen || !this.stored) return;
    const {name, shape: [, , , channels]} = this.stages.first;
    const map = this.stored[name].filter((_, i) => i % channels === this.filter);
    this.position = argmax(map);
  }

  showCell(y, x) {
    if (!this.reading) return;
    this.cellAt = [y, x];
    this.cell.textContent = t('inside.matrix.cell', {row: y + 1, col: x + 1, value: this.reading.pixels[y * SIDE + x]});
  }

  open(visible) {
    this.section.hidden = !visible;
    this.animate();
    if (visible) this.update();
  }

  /** The flashlight plays unless paused, the view is closed or the reader asked for reduced motion. */
  animate() {
    const on = !this.section.hidden && !this.paused && !this.motion.matches && this.stages !== null;
    this.play.textContent = t(this.paused || this.motion.matches ? 'inside.filter.play' : 'inside.filter.pause');
    this.play.disabled = this.motion.matches;
    if (on && !this.timer) {
      this.timer = setInterval(() => {
        const [, oh, ow] = this.stages.first.shape;
        this.position = (this.position + 1) % (oh * ow);
        this.draw();
      }, SCAN_MS);
    } else if (!on && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
    this.state.animating = this.timer !== null;
  }

  /** A new reading: {pixels (784 uint8) or null, answer}. */
  async take(reading) {
    this.reading = reading.pixels ? reading : null;
    if (!this.section.hidden) await this.update();
  }

  async update() {
    const started = performance.now();
    const model = this.getTeacher()?.model;
    if (!model) {
      this.summary.textContent = t('inside.server');
      return;
    }
    if (!model.meta.stages) {
      this.summary.textContent = t('inside.none');
      return;
    }
    if (!this.stages) {
      const response = await fetch('model.tflite');
      this.stages = new Stages(model.meta, new Uint8Array(await response.arrayBuffer()));
      this.picker.max = this.stages.first.shape[3] - 1;
      this.animate();
    }
    if (!this.reading) {
      this.summary.textContent = t('inside.empty');
      return;
    }
    const pixels = this.reading.pixels;
    const ran = performance.now();
    const raw = await model.stages(pixels);
    this.runMs = performance.now() - ran;
    this.stored = this.stages.stored(raw);
    this.render();
    this.state.updateMs.push(performance.now() - started);  // last: a new entry means the view is complete
  }

  /** Everything that depends on the reading; `draw` the flashlight part. */
  render() {
    if (!this.stored) return;
    const {stages, stored, reading} = this;
    const meta = stages.meta;
    const {temperature} = rule(meta);
    const last = stages.specs.at(-1).name;
    const probabilities = calibrate(Float32Array.from(stored[last], (q) => stages.real(last, q)), temperature);
    const answer = argmax(probabilities);
    this.summary.textContent = t('inside.summary', {digit: answer, maps: stages.first.shape[3]});
    paint(this.matrix, reading.pixels, SIDE, SIDE, false);
    this.matrix.setAttribute('aria-label', t('inside.matrix.label'));
    this.showCell(...(this.cellAt ?? [14, 14]));
    const sobelValues = sobel(reading.pixels);
    paint(this.sobel, sobelValues, SIDE, SIDE, true);
    const maps = stages.specs.filter((s) => s.shape.length === 4);
    if (this.layers.children.length !== maps.length) {
      this.layers.replaceChildren(...maps.map(() => el('figure', {}, [el('canvas', {role: 'img'}), el('figcaption')])));
    }
    let conv = 0;
    maps.forEach((spec, i) => {
      const [, h, w, c] = spec.shape;
      const [canvas, figcaption] = this.layers.children[i].children;
      paint(canvas, ...mosaic(stored[spec.name], h, w, c, (q) => stages.real(spec.name, q)), false);
      const caption = t(`inside.layers.${spec.kind}`, {n: spec.kind === 'conv' ? ++conv : 0, maps: c, h, w});
      canvas.setAttribute('aria-label', caption);
      figcaption.textContent = caption;
    });
    const pool = this.poolShown();
    const shown = (q) => fixed(stages.real(pool.source, q), 2);
    const kept = pool.block.indexOf(pool.kept);
    this.pool.replaceChildren(
      ...pool.block.map((q, i) => el('span', {className: i === kept ? 'kept' : ''}, [shown(q)])));
    this.poolText.textContent = t('inside.pool.block',
      {block: pool.block.map(shown).join(', '), kept: shown(pool.kept)});
    const dense = stages.specs.filter((s) => s.kind === 'dense');
    const before = stages.specs[stages.specs.indexOf(dense[0]) - 1];
    const flat = Float32Array.from(stored[before.name], (q) => stages.real(before.name, q));
    const features = Float32Array.from(stored[dense[0].name], (q) => stages.real(dense[0].name, q));
    paint(this.flat, flat, 1, flat.length, false);
    paint(this.features, features, 1, features.length, false);
    for (const [canvas, caption, words] of [[this.flat, this.flatCaption, t('inside.dense.flat', {n: flat.length})],
      [this.features, this.featuresCaption, t('inside.dense.features', {d: features.length})]]) {
      canvas.setAttribute('aria-label', words);
      caption.textContent = words;
    }
    bars(this.chances, probabilities, answer);
    this.chances.setAttribute('aria-label', t('inside.dense.bars'));
    const adapted = this.renderTeach(temperature);
    const macs = stages.multiplyAdds();
    const total = Object.values(macs).reduce((a, b) => a + b, 0);
    const counts = {conv: 0, dense: 0};
    this.gpu.replaceChildren(...Object.entries(macs).map(([name, n]) => {
      const kind = stages.spec(name).kind;
      const layer = t(`inside.gpu.${kind}`, {n: ++counts[kind]});
      return el('li', {}, [t('inside.gpu.row', {layer, n: n.toLocaleString(locale())})]);
    }));
    this.gpuTotal.textContent = t('inside.gpu.total', {n: total.toLocaleString(locale()), ms: this.runMs.toFixed(2)});
    const weights = Object.values(stages.weights).reduce((a, w) => a + w.values.length, 0);
    this.size.textContent = t('inside.int8.size', {n: weights.toLocaleString(locale()), kb: Math.round(weights / 1024),
      kb4: Math.round(4 * weights / 1024)});
    Object.assign(this.state, {
      ready: true, pixels: Array.from(reading.pixels), probabilities: Array.from(probabilities), answer,
      stages: Object.fromEntries(Object.entries(stored).map(([name, q]) => [name, Array.from(q)])),
      sobel: Array.from(sobelValues), pool, multiplyAdds: macs, adapted,
    });
    this.settle();
    this.draw();
  }

  /** The pooled value shown: the strongest of the pooling's outputs, and its block. */
  poolShown() {
    const spec = this.stages.specs.find((s) => s.kind === 'max_pool');
    const values = this.stored[spec.name];
    const best = argmax(values);
    const [, , w, c] = spec.shape;
    return {layer: spec.name, y: Math.floor(best / c / w), x: Math.floor(best / c) % w, channel: best % c,
      ...poolBlock(this.stages, this.stored, spec.name, Math.floor(best / c / w), Math.floor(best / c) % w, best % c)};
  }

  /** Stage 6: the base model's answer beside the taught one's, when this page was taught. */
  renderTeach(temperature) {
    const teacher = this.getTeacher();
    if (!teacher?.adaptation) {
      this.teach.replaceChildren(text('p', 'inside.teach.none'));
      translate(this.teach);
      return null;
    }
    // The model's own outputs, from the stages: `features` and `probabilities` are stage outputs too.
    const real = (kind) => {
      const spec = this.stages.specs.find((s) => s.output === kind);
      return Float32Array.from(this.stored[spec.name], (q) => this.stages.real(spec.name, q));
    };
    const probabilities = real('probabilities');
    const base = calibrate(probabilities, temperature);
    const adapted = calibrate(apply(teacher.adaptation, probabilities, real('features')), temperature);
    const column = (key, probabilities) => {
      const list = el('ol', {className: 'chances'});
      bars(list, probabilities, argmax(probabilities));
      return el('div', {}, [el('p', {}, [t(key, {digit: argmax(probabilities)})]), list]);
    };
    const samples = teacher.adaptation.samples.reduce((a, b) => a + b, 0);
    this.teach.replaceChildren(column('inside.teach.base', base), column('inside.teach.adapted', adapted),
      el('p', {}, [t('inside.teach.samples', {n: samples})]));
    return {base: Array.from(base), adapted: Array.from(adapted)};
  }

  /** The flashlight at its position: the light on the digit, the filter, the map, the arithmetic. */
  draw() {
    if (!this.stored) return;
    const {stages, stored, reading} = this;
    const spec = stages.first;
    const [, oh, ow, channels] = spec.shape;
    const [y, x] = [Math.floor(this.position / ow), this.position % ow];
    const [kh, kw] = spec.kernel;
    this.light.width = this.light.height = SIDE * ZOOM;
    const context = this.light.getContext('2d');
    context.imageSmoothingEnabled = false;
    context.drawImage(this.matrix, 0, 0, SIDE * ZOOM, SIDE * ZOOM);  // the digit, as stage 1 painted it
    context.strokeStyle = '#4cf';
    context.lineWidth = 3;
    const top = Math.floor(Math.max((oh - 1) * spec.stride[0] + kh - SIDE, 0) / 2) * (spec.padding === 'same');
    const left = Math.floor(Math.max((ow - 1) * spec.stride[1] + kw - SIDE, 0) / 2) * (spec.padding === 'same');
    context.strokeRect((x * spec.stride[1] - left) * ZOOM, (y * spec.stride[0] - top) * ZOOM, kw * ZOOM, kh * ZOOM);
    this.light.setAttribute('aria-label', t('inside.filter.light', {row: y + 1, col: x + 1}));
    paint(this.kernel, stages.filter(this.filter).flat(), kh, kw, true);
    this.kernel.setAttribute('aria-label', t('inside.filter.weights', {n: this.filter + 1}));
    const map = Float32Array.from({length: oh * ow},
      (_, i) => stages.real(spec.name, stored[spec.name][i * channels + this.filter]));
    paint(this.scratch, map, oh, ow, false);
    this.map.width = this.map.height = SIDE * ZOOM;
    const mapContext = this.map.getContext('2d');
    mapContext.imageSmoothingEnabled = false;
    mapContext.drawImage(this.scratch, 0, 0, SIDE * ZOOM, SIDE * ZOOM);
    mapContext.strokeStyle = '#4cf';
    mapContext.lineWidth = 3;
    mapContext.strokeRect(x * SIDE * ZOOM / ow, y * SIDE * ZOOM / oh, SIDE * ZOOM / ow, SIDE * ZOOM / oh);
    this.map.setAttribute('aria-label', t('inside.filter.map', {n: this.filter + 1, h: oh, w: ow}));
    const sum = stages.arithmetic(reading.pixels, stored, y, x, this.filter);
    const table = el('table', {}, [el('caption', {}, [t('inside.filter.products')]),
      el('tbody', {}, sum.products.map((row) => el('tr', {},
        row.map((p) => el('td', {className: p > 0 ? 'plus' : p < 0 ? 'minus' : ''}, [fixed(p)])))))]);
    const shown = stages.real(spec.name, sum.stored);
    this.sum.replaceChildren(table,
      el('p', {}, [t('inside.filter.sum', {n: kh * kw, sum: fixed(sum.sum)})]),
      el('p', {}, [t('inside.filter.bias', {bias: fixed(sum.bias), total: fixed(sum.total)})]),
      el('p', {}, [t('inside.filter.relu', {activated: fixed(sum.activated)})]),
      el('p', {}, [t('inside.filter.stored', {stored: sum.requantized, shown: fixed(shown)})]));
    this.int8.textContent = t('inside.int8.value',
      {q: sum.stored, scale: spec.scale.toPrecision(4), zero: sum.zeroPoint, real: fixed(shown)});
    this.state.arithmetic = {...sum, shown, mapValue: stored[spec.name][this.position * channels + this.filter]};
  }
}

/** The language switch: a labelled <select> of LOCALES, wired to setLocale. */
function mountLanguage(select) {
  select.replaceChildren(...Object.entries(LOCALES).map(([value, name]) => el('option', {value, lang: value}, [name])));
  select.value = locale();
  select.addEventListener('change', () => setLocale(select.value));
}

/**
 * Mounts the Inside view into #inside, opened by the #inside-open button, and the #lang switch.
 * `getTeacher()` gives web/teach.js's Teacher (its model and adaptation), null while the server answers.
 */
export function mountInside(getTeacher) {
  const section = document.getElementById('inside');
  const button = document.getElementById('inside-open');
  const view = new InsideView(section, getTeacher);
  const lang = document.getElementById('lang');
  if (lang) mountLanguage(lang);
  button.setAttribute('aria-controls', section.id);
  button.setAttribute('aria-expanded', 'false');
  button.addEventListener('click', () => {
    const opening = section.hidden;
    view.open(opening);
    button.setAttribute('aria-expanded', String(opening));
    if (opening) section.scrollIntoView({behavior: view.motion.matches ? 'auto' : 'smooth'});
  });
  window.addEventListener('reading', (e) => view.take(e.detail).catch((error) => {
    view.state.error = String(error);
  }));
  translate(document);
  return view;
}
