// The teaching side of the main view (web/teach.js does the teaching): the buttons while teaching, and the
// panel under the pad with what was taught and every sample, to relabel or remove; Forget asks first.
import {t} from './i18n.js';
import {SIZE} from './preprocess.js';
import {$, listed, say, where} from './say.js';

/**
 * Shows `teach` (window.digitcnn.teach) and the `samples` it describes: the buttons while teaching, and the
 * panel under the pad: what the model was taught, what now reads differently, what to check, each sample.
 */
export function showTeaching(teach, samples) {
  $('teach-nav').hidden = !teach.active;
  $('teach').hidden = teach.active || !teach.canTeach;
  for (const id of ['forget', 'export']) $(id).hidden = teach.active || teach.samples === 0;
  if (teach.active) return;
  say($('taught-heading'), teach.adapted ? 'teach.heading.taught' : 'teach.heading.base');
  if (teach.source === 'browser') say($('taught'), 'teach.taught', {where, count: teach.samples});
  else if (teach.source === 'server') say($('taught'), 'teach.server');
  else say($('taught'), teach.canTeach ? 'teach.base' : 'teach.cannot');
  const changed = teach.differently ?? [];
  if (teach.source !== 'browser') say($('differently'), null);
  else if (changed.length) {
    say($('differently'), 'teach.differently', {digits: () => listed(changed.map((c) => c.digit)),
                                                 before: () => listed(changed.map((c) => c.was))});
  } else say($('differently'), 'teach.same');
  // Digits with no or few samples in one line each; each sample unlike its label in its own line, by its name.
  const digits = (kind) => teach.issues.filter((i) => i.kind === kind).map((i) => i.digit);
  const lines = [['issue.missing', {digits: () => listed(digits('missing'))}], ['issue.few', {digits: () => listed(digits('few'))}]]
    .filter(([key]) => digits(key.slice(6)).length)
    .concat(teach.issues.filter((i) => i.kind === 'unlike').map((issue) => [issue.alone ? 'issue.alone' : 'issue.unlike',
      {digit: issue.digit, name: teach.names[issue.index], reads: issue.reads_as}]));
  $('issues').replaceChildren(...lines.map(([key, params]) => {
    const li = document.createElement('li');
    say(li, key, params);
    return li;
  }));
  showSamples(teach, samples);
}

/** Every sample: its picture, its label (a list to change it) and a Remove button; flagged ones say what they read as. */
function showSamples(teach, samples) {
  $('samples-box').hidden = teach.samples === 0;
  say($('samples-title'), 'teach.samples', {count: teach.samples});
  const flagged = new Map(teach.issues.filter((i) => 'index' in i).map((i) => [i.index, i.reads_as]));
  $('samples').replaceChildren(...samples.map((sample, index) => {
    const name = teach.names[index];
    const li = document.createElement('li');
    li.classList.toggle('flagged', flagged.has(index));
    const picture = document.createElement('canvas');
    picture.width = picture.height = SIZE;
    picture.setAttribute('role', 'img');
    picture.setAttribute('aria-label', t('sample.picture', {name}));
    const frame = picture.getContext('2d').createImageData(SIZE, SIZE);
    sample.pixels.forEach((v, i) => frame.data.set([v, v, v, 255], 4 * i));
    picture.getContext('2d').putImageData(frame, 0, 0);
    const label = document.createElement('label');
    const select = document.createElement('select');
    select.dataset.index = index;
    select.setAttribute('aria-label', t('sample.label', {name}));
    select.append(...Array.from({length: 10}, (_, d) => new Option(String(d), String(d), false, d === sample.digit)));
    label.append(name, select);
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.dataset.index = index;
    remove.className = 'remove';
    remove.textContent = t('sample.remove');
    remove.setAttribute('aria-label', t('sample.removeLabel', {name}));
    li.append(picture, label, remove);
    if (flagged.has(index)) {
      const reads = document.createElement('span');
      reads.className = 'reads';
      reads.textContent = t('sample.reads', {digit: flagged.get(index)});
      li.append(reads);
    }
    return li;
  }));
}

/**
 * Wires the teaching controls to `teacher()` (web/teach.js Teacher): errors go to `failed`, Teach stops
 * the camera; focus goes where a keyboard user goes on (Next, then what was taught).
 */
export function bindTeaching(teacher, {failed, stopCamera}) {
  const teaching = (action) => (...args) => action(...args).catch(failed);
  $('teach').addEventListener('click', () => {
    stopCamera();
    teacher().start();
    $('next').focus();  // a keyboard user goes on with Next (or Photo); the prompt is announced
  });
  $('next').addEventListener('click', teaching(() => teacher().next()));
  $('skip').addEventListener('click', teaching(() => teacher().skip()));
  $('done').addEventListener('click', teaching(async () => {
    await teacher().done();
    $('taught-heading').focus();  // what was taught, read out and scrolled into view
  }));
  // Removing or relabelling one sample: the panel is rebuilt, focus returns to the same place in it.
  $('samples').addEventListener('change', teaching(async (e) => {
    const index = Number(e.target.dataset.index);
    await teacher().relabel(index, Number(e.target.value));
    $('samples').querySelector(`select[data-index="${index}"]`)?.focus();
  }));
  $('samples').addEventListener('click', (e) => {
    if (!e.target.classList.contains('remove')) return;
    const index = Number(e.target.dataset.index);
    teaching(async () => {
      await teacher().remove(index);
      const buttons = $('samples').querySelectorAll('button.remove');
      (buttons[Math.min(index, buttons.length - 1)] ?? $('taught-heading')).focus();
    })();
  });
  $('forget').addEventListener('click', () => {
    say($('forget-ask'), 'forget.ask', {count: teacher().samples.length});
    $('forget-dialog').showModal();
  });
  $('forget-dialog').addEventListener('close', teaching(async () => {
    if ($('forget-dialog').returnValue !== 'forget') return;
    await teacher().forget();
    $('teach').focus();
  }));
  $('export').addEventListener('click', () => {
    const link = document.createElement('a');
    link.href = URL.createObjectURL(teacher().exportSamples());
    link.download = 'digitcnn-samples.zip';
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  });
}
