// The phone page: draw, photograph or film a digit or a number; the model answers in the browser, else the server does.
import {addStrings, translate} from './i18n.js';
import {answer as reply, loadModel} from './model.js';
import {MAX_ASPECT, findDigits, numberAnswer} from './multi.js';
import {SIZE, toMnist} from './preprocess.js';
import {$, put, say, where} from './say.js';
import strings from './strings/page.js';
import {Teacher} from './teach.js';
import {bindTeaching, showTeaching} from './teach-view.js';
import {mountInside} from './inside/inside.js';
import {startOffline} from './install.js';

addStrings(strings);
translate();

const pad = $('pad');
const view = pad.getContext('2d');
// Strokes go twice: onto the pad at the screen's resolution, and onto a small canvas that is read.
// 210 px: edge/preprocess box-shrinks it by 2 to a 105 px working image, the least work its
// pipeline allows (a larger canvas costs more time, not accuracy: MNIST digits are 20 px).
const READ_SIDE = 210;
const reading = new OffscreenCanvas(READ_SIDE, READ_SIDE);
const ink = reading.getContext('2d', {willReadFrequently: true});
const BRUSH = 1 / 14;  // of the pad's side: a finger's stroke, about MNIST's 2 px once the digit is 20 px tall
const PHOTO_SIDE = 1024;  // photos are read at this long side at most, as edge/preprocess/load.py LOAD_SIDE
const CAMERA_ROI = 0.6;  // the centred square read from the live camera (`camera --roi`)

// State the tests, the benchmark and other views read: which path and model answered, how fast, when the
// model was ready, the last 28x28 pixels read (the first digit's, for a number) and every digit's of a number.
const state = window.digitcnn = {path: null, model: null, answer: null, pixels: null, digits: null, latencies: [],
                                 preprocessMs: [], readyAt: null, error: null, teach: {}};
let teacher = null;  // the model in the browser, adapted or not (web/teach.js); null while the server answers
const forceServer = new URLSearchParams(location.search).has('server');

let showingPhoto = false;
let photoPixels = null;  // the photo on the pad, framed: what Next takes while teaching
function clearPad() {
  for (const context of [view, ink]) {
    context.fillStyle = '#000';
    context.fillRect(0, 0, context.canvas.width, context.canvas.height);
  }
  showingPhoto = false;
  photoPixels = null;
}

/** Keeps the pad's backing store at its shown size (a square) times the pixel ratio, its drawing rescaled. */
function fitPad() {
  const side = Math.round(pad.getBoundingClientRect().width * devicePixelRatio);
  if (!side || side === pad.width) return;
  const old = new OffscreenCanvas(pad.width, pad.height);
  old.getContext('2d').drawImage(pad, 0, 0);
  pad.width = pad.height = side;
  view.drawImage(old, 0, 0, side, side);
}

/**
 * Reads one image (ImageData): one digit, or a number when several digits are found (web/multi.js, as
 * `predict --multi`). `upload` makes the bytes the server reads if the browser cannot (one digit only).
 * `start` (a performance.now() time, e.g. the stroke's end) is where the measured latency begins;
 * `numbers` false reads one digit only (the live camera, as `camera` does).
 */
async function read(image, upload, start = performance.now(), numbers = true) {
  const pixels = toMnist(image);
  const found = numbers && teacher && pixels ? findDigits(image) : [];
  state.preprocessMs.push(performance.now() - start);
  let answer, shown = pixels;
  if (teacher) {
    const ask = async (p) => reply((await teacher.probabilities(p)).probabilities, teacher.model.meta);
    if (found.length > 1) {
      const answers = [];
      for (const digit of found) answers.push(await ask(digit.pixels));
      answer = numberAnswer(found, answers);
      shown = found[0].pixels;
    } else {
      answer = pixels ? await ask(pixels) : {digit: null, confidence: 0, top: []};
    }
    state.path = 'browser';
    state.model = teacher.adaptation ? 'adapted' : 'base';
  } else {
    answer = await askServer(await upload());
    state.path = 'server';
    state.model = null;  // the server's model, adapted or not: its metadata says
  }
  say($('error'), null);
  state.error = null;
  state.answer = answer;
  state.pixels = shown && Array.from(shown);
  state.digits = found.length > 1 ? found.map((d) => Array.from(d.pixels)) : null;
  showAnswer();
  showSeen(found.length > 1 ? found.map((d) => d.pixels) : [shown]);
  const ms = (performance.now() - start).toFixed(0);
  state.latencies.push(performance.now() - start);  // last: a new entry means the answer above is complete
  window.dispatchEvent(new CustomEvent('reading', {detail: {pixels: shown, answer}}));  // the Inside view follows
  if (state.path === 'server') say($('status'), 'status.server', {ms});
  else say($('status'), state.model === 'adapted' ? 'status.readTaught' : 'status.read', {where, ms});
}

async function askServer(blob) {
  const form = new FormData();
  form.append('file', blob, 'image.png');
  const response = await fetch('api/predict', {method: 'POST', body: form});
  const answer = await response.json();
  if (!response.ok) throw Object.assign(new Error(answer.error), {key: 'error.server'});
  return answer;
}

const percent = (p) => (p < 1 ? Math.min(99, Math.round(p * 100)) : 100);  // "100%" only when it is

function bars(rows) {
  $('top').replaceChildren(...rows.map(([label, p]) => {
    const li = document.createElement('li');
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.style.width = `${Math.max(1, p * 100)}px`;
    li.append(`${label}`, bar, `${percent(p)}%`);
    return li;
  }));
}

/** The answer in `state.answer` (none: the start), or the teaching prompt while teaching. */
function showAnswer() {
  const digit = $('digit');
  digit.classList.remove('prompt', 'number');
  if (teacher?.active) return showPrompt();
  const answer = state.answer;
  if (!answer) {
    put(digit, '');
    say($('confidence'), 'answer.start');
    return bars([]);
  }
  if ('number' in answer) {
    digit.classList.add('number');
    put(digit, answer.number);
    say($('confidence'), 'answer.number', {count: answer.digits.length});
    return bars(answer.digits.map((d) => [d.digit ?? '?', d.confidence]));
  }
  put(digit, String(answer.digit ?? (answer.top.length ? '?' : '')));
  if (!answer.top.length) say($('confidence'), 'answer.none');
  else if (answer.digit === null) say($('confidence'), 'answer.unsure');
  else say($('confidence'), 'answer.sure', {percent: percent(answer.confidence)});
  bars(answer.top);
}

/** The 28x28 images the model read, side by side (one per digit of a number); none: black. */
function showSeen(images) {
  const seen = $('seen');
  const list = images.filter(Boolean);
  seen.width = SIZE * Math.max(1, list.length);
  const context = seen.getContext('2d');
  context.fillStyle = '#000';
  context.fillRect(0, 0, seen.width, SIZE);
  list.forEach((pixels, n) => {
    const frame = context.createImageData(SIZE, SIZE);
    pixels.forEach((v, i) => frame.data.set([v, v, v, 255], 4 * i));
    context.putImageData(frame, n * SIZE, 0);
  });
}

/** Says what went wrong (role=alert announces it); a file that failed leaves no old answer beside it. */
function failed(error, {forget = false} = {}) {
  const reason = String(error.message ?? error);
  state.error = reason;
  say($('error'), error.key ?? 'error.other', {reason});
  if (forget) {
    state.answer = state.pixels = state.digits = null;
    showAnswer();
    showSeen([]);
  }
}

/**
 * Can the pad's drawing (white on black) hold more than one digit: a blank column or row inside its ink's
 * box, or a box wider than web/multi.js MAX_ASPECT? Only then is it split (most drawings are one digit,
 * and splitting costs as much again as reading one).
 */
function maySplit(image) {
  const {width, height, data} = image;
  const columns = new Uint8Array(width), rows = new Uint8Array(height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (data[4 * (y * width + x)] > 127) columns[x] = rows[y] = 1;
    }
  }
  const span = (marks) => [marks.indexOf(1), marks.lastIndexOf(1)];
  const [left, right] = span(columns), [top, bottom] = span(rows);
  if (left < 0) return false;
  const gap = (marks, a, b) => marks.subarray(a, b + 1).includes(0);
  return gap(columns, left, right) || gap(rows, top, bottom) || right - left > MAX_ASPECT * (bottom - top);
}

function readPad(start) {
  const image = ink.getImageData(0, 0, READ_SIDE, READ_SIDE);
  return read(image, () => reading.convertToBlob({type: 'image/png'}), start, maySplit(image)).catch(failed);
}

// Drawing: pointer events cover mouse, touch and pen alike.
let last = null;
pad.addEventListener('pointerdown', (e) => {
  pad.setPointerCapture(e.pointerId);
  if (showingPhoto) clearPad();
  last = at(e);
  stroke(last, last);
});
pad.addEventListener('pointermove', (e) => {
  if (!last) return;
  const next = at(e);
  stroke(last, next);
  last = next;
});
for (const type of ['pointerup', 'pointercancel']) {
  pad.addEventListener(type, (e) => {
    if (!last) return;
    last = null;
    if (!teacher?.active) readPad(e.timeStamp);  // while teaching, "Next" takes the drawing
  });
}

/** The pointer's position as fractions of the pad's side (the pad is square: both axes alike). */
function at(e) {
  const box = pad.getBoundingClientRect();
  return [(e.clientX - box.left) / box.width, (e.clientY - box.top) / box.height];
}

function stroke([x0, y0], [x1, y1]) {
  for (const context of [view, ink]) {
    const side = context.canvas.width;
    context.strokeStyle = '#fff';
    context.lineWidth = BRUSH * side;
    context.lineCap = context.lineJoin = 'round';
    context.beginPath();
    context.moveTo(x0 * side, y0 * side);
    context.lineTo(x1 * side, y1 * side);
    context.stroke();
  }
}

$('clear').addEventListener('click', () => {
  stopCamera();
  clearPad();
  say($('error'), null);
  state.answer = state.pixels = state.digits = null;
  showAnswer();  // while teaching: the prompt stays
  showSeen([]);
});

// Photos: decoded by the browser (EXIF orientation applied), shown on the pad, read at PHOTO_SIDE at most.
// No `capture` attribute: phones offer both the gallery and the camera.
$('photo').addEventListener('change', async (e) => {
  const file = e.target.files[0];
  e.target.value = '';
  if (!file) return;
  stopCamera();
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch (error) {
    return failed(Object.assign(new Error(error.message), {key: 'error.file'}), {forget: true});
  }
  const scale = Math.min(1, PHOTO_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = new OffscreenCanvas(Math.round(bitmap.width * scale), Math.round(bitmap.height * scale));
  const context = canvas.getContext('2d');
  context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const cover = Math.max(pad.width / canvas.width, pad.height / canvas.height);
  clearPad();
  view.drawImage(canvas, (pad.width - canvas.width * cover) / 2, (pad.height - canvas.height * cover) / 2,
    canvas.width * cover, canvas.height * cover);
  showingPhoto = true;
  const image = context.getImageData(0, 0, canvas.width, canvas.height);
  if (teacher?.active) {  // a sample for Teach: kept for Next, the prompt stays
    photoPixels = toMnist(image);
    showSeen([photoPixels]);
    return say($('confidence'), photoPixels ? 'teach.photo' : 'teach.noPhoto', {digit: state.teach.digit});
  }
  await read(image, async () => file).catch((error) => failed(error, {forget: true}));
});

// Live camera: only where the browser allows it (https or localhost); reads the centred square, one digit.
const cameraAllowed = Boolean(navigator.mediaDevices?.getUserMedia);
let camera = null;
$('camera').addEventListener('click', async () => {
  if (camera) return stopCamera();
  if (!cameraAllowed) return failed({key: 'error.https', message: 'insecure origin'});
  try {
    const stream = await navigator.mediaDevices.getUserMedia({video: {facingMode: 'environment'}});
    const video = $('video');
    video.srcObject = stream;
    await video.play();
    video.hidden = false;
    pad.hidden = true;
    say($('camera-text'), 'camera.stop');
    camera = {stream, timer: setInterval(readFrame, 250)};
  } catch (error) {
    failed(Object.assign(new Error(error.message), {key: 'error.camera'}));
  }
});

let busy = false;
async function readFrame() {
  const video = $('video');
  if (busy || !video.videoWidth) return;
  busy = true;
  const side = Math.round(Math.min(video.videoWidth, video.videoHeight) * CAMERA_ROI);
  const canvas = new OffscreenCanvas(Math.min(side, 400), Math.min(side, 400));
  const context = canvas.getContext('2d');
  context.drawImage(video, (video.videoWidth - side) / 2, (video.videoHeight - side) / 2, side, side,
    0, 0, canvas.width, canvas.height);
  await read(context.getImageData(0, 0, canvas.width, canvas.height),
    () => canvas.convertToBlob({type: 'image/png'}), performance.now(), false).catch(failed);
  busy = false;
}

function stopCamera() {
  if (!camera) return;
  clearInterval(camera.timer);
  camera.stream.getTracks().forEach((track) => track.stop());
  camera = null;
  $('video').hidden = true;
  pad.hidden = false;
  say($('camera-text'), 'camera');
}

// Teaching (web/teach.js): the pad collects samples instead of being read, the buttons change.
function showPrompt() {
  const {digit, again, round, rounds} = state.teach;
  $('digit').classList.add('prompt');
  say($('digit'), 'teach.prompt', {digit});
  say($('confidence'), again ? 'teach.again' : 'teach.round', {digit, round, rounds});
  bars([]);
}

/** The ready line: where the page reads, and whether the model was taught. */
function showReady() {
  if (teacher) say($('status'), state.teach.adapted ? 'status.readyTaught' : 'status.ready', {where});
}

/** What teaching changed: the panel, the answer line (or the prompt) and the ready line. */
function changed(teach) {
  showTeaching(teach, teacher.samples);
  showAnswer();
  showReady();
}
bindTeaching(() => teacher, {failed, stopCamera});
window.addEventListener('localechange', () => {  // texts set with say() are rewritten by web/say.js
  if (teacher) changed(state.teach);
});

/** Runs the pipeline on a sample stroke while idle, so the first real stroke meets compiled code. */
function warmUp() {
  const canvas = new OffscreenCanvas(READ_SIDE, READ_SIDE);
  const context = canvas.getContext('2d', {willReadFrequently: true});
  context.fillRect(0, 0, READ_SIDE, READ_SIDE);
  context.strokeStyle = '#fff';
  context.lineWidth = BRUSH * READ_SIDE;
  context.strokeRect(READ_SIDE / 3, READ_SIDE / 4, READ_SIDE / 3, READ_SIDE / 2);
  const image = context.getImageData(0, 0, READ_SIDE, READ_SIDE);
  for (let i = 0; i < 5; i++) {
    toMnist(image);
    findDigits(image);
  }
}

mountInside(() => teacher);
$('note').hidden = cameraAllowed;  // only secure origins get a camera: said on the button itself
fitPad();
new ResizeObserver(fitPad).observe(pad);
clearPad();
showAnswer();
say($('status'), 'status.loading');
if (forceServer) {
  say($('status'), 'status.serverAsked');
  state.readyAt = performance.now();
  startOffline();
} else {
  loadModel().then(async (loaded) => {
    const taught = new Teacher(loaded, {pixels: () => (showingPhoto ? photoPixels
      : toMnist(ink.getImageData(0, 0, READ_SIDE, READ_SIDE))), clear: clearPad, changed}, state);
    teacher = taught;
    await taught.load();  // adapts to samples kept from an earlier visit, if any
    state.readyAt = performance.now();
    showReady();
    requestIdleCallback(warmUp);
  }).catch((error) => {
    teacher = null;
    state.readyAt = performance.now();
    state.error = String(error.message ?? error);
    say($('status'), 'status.noModel');
  }).finally(startOffline);
}
