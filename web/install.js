// The page as an installed app: registers the service worker (web/sw.js) that keeps it working offline,
// names the model it runs, and when a new version has arrived, offers to switch to it with a reload.
import {addStrings, t} from './i18n.js';
import strings from './strings/install.js';

addStrings(strings);
const main = document.querySelector('main') ?? document.body;

/** A line at the page's end naming the model it runs, from the model's own metadata. */
async function nameModel() {
  const meta = await fetch('model.json').then((response) => response.json());
  const line = document.createElement('p');
  line.id = 'model-name';
  const render = () => {
    line.textContent = t('install.model', {name: meta.source.model, id: meta.sha256.slice(0, 8)});
  };
  render();
  window.addEventListener('localechange', render);
  main.append(line);
}

/** "A new version is ready. [Reload]": the new service worker takes over only when asked. */
function offer(worker) {
  if (document.getElementById('update')) return;
  const bar = document.createElement('p');
  bar.id = 'update';
  bar.setAttribute('role', 'status');
  const text = document.createElement('span');
  const button = document.createElement('button');
  button.type = 'button';
  const render = () => {
    text.textContent = t('install.update');
    button.textContent = t('install.reload');
  };
  render();
  window.addEventListener('localechange', render);
  button.addEventListener('click', () => worker.postMessage('update'));
  bar.append(text, button);
  main.prepend(bar);
}

async function register() {
  const registration = await navigator.serviceWorker.register('sw.js');
  const ready = () => {
    if (registration.waiting && navigator.serviceWorker.controller) offer(registration.waiting);
  };
  const watch = (worker) => worker?.addEventListener('statechange', ready);
  ready();
  watch(registration.installing);  // an update found before this line ran
  registration.addEventListener('updatefound', () => watch(registration.installing));
}

nameModel().catch(() => {});  // no metadata, no line: the page says why it cannot run elsewhere

/**
 * Starts offline use; web/app.js calls it once the page can answer, so that a first visit's download of
 * every file for the cache does not compete with the files the first answer needs. Service workers exist
 * only on secure origins (https, localhost); plain http on a LAN goes without.
 */
export function startOffline() {
  if (!('serviceWorker' in navigator)) return;
  // A page that was served by one version reloads when another takes over (here or in another tab):
  // its code must never run against the next version's files. The first install is not a change.
  const served = Boolean(navigator.serviceWorker.controller);
  navigator.serviceWorker.addEventListener('controllerchange', () => {
    if (served) location.reload();
  });
  register().catch((error) => console.warn(`offline use unavailable: ${error.message}`));
}
