// The phone page: draw, photograph or film a digit; the model answers in the browser, else the server does.
import {answer as reply, loadModel} from './model.js';
import {SIZE, toMnist} from './preprocess.js';
import {Teacher} from './teach.js';
import {mountInside} from './inside/inside.js';  // issue 24: the Inside view
import './install.js';

const $ = (id) => document.getElementById(id);
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

// State the tests and the benchmark read: which path and model answered, how fast, when the model was ready.
const state = window.digitcnn = {path: null, model: null, answer: null, pixels: null, latencies: [], preprocessMs: [],
                                 readyAt: null, error: null, teach: {}};
let teacher = null;  // the model in the browser, adapted or not (web/teach.js); null while the server answers
const forceServer = new URLSearchParams(location.search).has('server');

let showingPhoto = false;
function clearPad() {
  for (const context of [view, ink]) {
    context.fillStyle = '#000';
    context.fillRect(0, 0, context.canvas.width, context.canvas.height);
  }
  showingPhoto = false;
}

/**
 * Reads one image (ImageData); `upload` makes the bytes the server reads if the browser cannot.
 * `start` (a performance.now() time, e.g. the stroke's end) is where the measured latency begins.
 */
async function read(image, upload, start = performance.now()) {
  const pixels = toMnist(image);
  state.preprocessMs.push(performance.now() - start);
  let answer;
  if (teacher) {
    const read = pixels ? await teacher.probabilities(pixels) : null;
    answer = read ? reply(read.probabilities, teacher.model.meta) : {digit: null, confidence: 0, top: []};
    state.path = 'browser';
    state.model = read?.adapted ? 'adapted' : 'base';
  } else {
    answer = await askServer(await upload());
    state.path = 'server';
    state.model = null;  // the server's model, adapted or not: its metadata says
  }
  show(answer, pixels);
  const ms = performance.now() - start;
  state.answer = answer;
  state.pixels = pixels && Array.from(pixels);
  state.latencies.push(ms);  // last: a new entry means the answer above is complete
  window.dispatchEvent(new CustomEvent('reading', {detail: {pixels, answer}}));  // issue 24: Inside follows
  $('status').textContent = `answered by ${state.path === 'browser' ? 'this device (LiteRT.js)' : 'the server'}`
    + `${state.path === 'browser' ? `, ${state.model} model` : ''} in ${ms.toFixed(1)} ms`;
}

async function askServer(blob) {
  const form = new FormData();
  form.append('file', blob, 'image.png');
  const response = await fetch('api/predict', {method: 'POST', body: form});
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error);
  return answer;
}

function show(answer, pixels) {
  $('digit').textContent = answer.digit ?? (answer.top.length ? '?' : '–');
  $('confidence').textContent = answer.top.length
    ? (answer.digit === null ? 'not sure' : `${(answer.confidence * 100).toFixed(1)}% sure`)
    : 'no digit found';
  $('top').replaceChildren(...answer.top.map(([d, p]) => {
    const li = document.createElement('li');
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.style.width = `${Math.max(1, p * 100)}px`;
    li.append(`${d}`, bar, `${(p * 100).toFixed(1)}%`);
    return li;
  }));
  const seen = $('seen').getContext('2d');
  const frame = seen.createImageData(SIZE, SIZE);
  (pixels ?? new Uint8Array(SIZE * SIZE)).forEach((v, i) => frame.data.set([v, v, v, 255], 4 * i));
  seen.putImageData(frame, 0, 0);
}

function failed(error) {
  state.error = String(error.message ?? error);
  $('status').textContent = `error: ${state.error}`;
}

const readPad = (start) => read(ink.getImageData(0, 0, READ_SIDE, READ_SIDE),
  () => reading.convertToBlob({type: 'image/png'}), start).catch(failed);

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

/** The pointer's position as fractions of the pad's side. */
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
  show({digit: null, confidence: 0, top: []}, null);
  $('digit').textContent = '?';
  $('confidence').textContent = 'draw a digit';
});

// Photos: decoded by the browser (EXIF orientation applied), shown on the pad, read at PHOTO_SIDE at most.
$('photo').addEventListener('change', async (e) => {
  const file = e.target.files[0];
  e.target.value = '';
  if (!file) return;
  stopCamera();
  try {
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(1, PHOTO_SIDE / Math.max(bitmap.width, bitmap.height));
    const canvas = new OffscreenCanvas(Math.round(bitmap.width * scale), Math.round(bitmap.height * scale));
    const context = canvas.getContext('2d');
    context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    const cover = Math.max(pad.width / canvas.width, pad.height / canvas.height);
    clearPad();
    view.drawImage(canvas, (pad.width - canvas.width * cover) / 2, (pad.height - canvas.height * cover) / 2,
      canvas.width * cover, canvas.height * cover);
    showingPhoto = true;
    await read(context.getImageData(0, 0, canvas.width, canvas.height), async () => file);
  } catch (error) {
    failed(error);
  }
});

// Live camera: only where the browser allows it (https or localhost); reads the centred square.
let camera = null;
$('camera').addEventListener('click', async () => {
  if (camera) return stopCamera();
  if (!navigator.mediaDevices?.getUserMedia) return;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({video: {facingMode: 'environment'}});
    const video = $('video');
    video.srcObject = stream;
    await video.play();
    video.hidden = false;
    pad.hidden = true;
    $('camera').textContent = 'Stop';
    camera = {stream, timer: setInterval(readFrame, 250)};
  } catch (error) {
    failed(error);
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
    () => canvas.convertToBlob({type: 'image/png'})).catch(failed);
  busy = false;
}

function stopCamera() {
  if (!camera) return;
  clearInterval(camera.timer);
  camera.stream.getTracks().forEach((track) => track.stop());
  camera = null;
  $('video').hidden = true;
  pad.hidden = false;
  $('camera').textContent = 'Camera';
}

// Teaching (web/teach.js): the pad collects samples instead of being read, the buttons change.
const teachingUi = {
  pixels: () => toMnist(ink.getImageData(0, 0, READ_SIDE, READ_SIDE)),
  clear: clearPad,
  prompt: (text) => {
    $('digit').textContent = text;
    $('confidence').textContent = 'then Next';
  },
  changed: ({active, canTeach, samples, says}) => {
    $('digit').classList.toggle('prompt', active);
    if (!active) show({digit: null, confidence: 0, top: []}, null);
    for (const id of ['skip', 'next', 'done']) $(id).hidden = !active;
    $('teach').hidden = active || !canTeach;
    for (const id of ['forget', 'export']) $(id).hidden = active || samples === 0;
    $('taught').textContent = says;
  },
};
const teaching = (action) => () => action().catch(failed);
$('teach').addEventListener('click', () => { stopCamera(); teacher.start(); });
$('next').addEventListener('click', teaching(() => teacher.next()));
$('skip').addEventListener('click', teaching(() => teacher.skip()));
$('done').addEventListener('click', teaching(() => teacher.done()));
$('forget').addEventListener('click', teaching(() => teacher.forget()));
$('export').addEventListener('click', () => {
  const link = document.createElement('a');
  link.href = URL.createObjectURL(teacher.exportSamples());
  link.download = 'digitcnn-samples.zip';
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
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
  for (let i = 0; i < 5; i++) toMnist(image);
}

mountInside(() => teacher);  // issue 24
$('note').hidden = Boolean(navigator.mediaDevices?.getUserMedia);  // only secure origins get a camera
pad.width = pad.height = Math.round(pad.getBoundingClientRect().width * devicePixelRatio);
clearPad();
if (forceServer) {
  $('status').textContent = 'the server answers (?server)';
  state.readyAt = performance.now();
} else {
  loadModel().then(async (loaded) => {
    const taught = new Teacher(loaded, teachingUi, state);
    await taught.refresh();  // adapts to samples kept from an earlier visit, if any
    teacher = taught;
    state.readyAt = performance.now();
    $('status').textContent = 'ready: the model runs on this device';
    requestIdleCallback(warmUp);
  }).catch((error) => {
    state.readyAt = performance.now();
    $('status').textContent = `the model cannot run in this browser (${error.message}); the server answers`;
  });
}
