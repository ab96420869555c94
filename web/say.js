// Words the page sets from JavaScript (web/i18n.js holds them): each element's key and params are kept,
// so a change of language ('localechange') rewrites them where they stand. Shared by the main view's modules.
import {t} from './i18n.js';

export const $ = (id) => document.getElementById(id);

// The device as its owner calls it: a touch screen is "this phone", a mouse "this computer".
const WHERE = matchMedia('(pointer: coarse)').matches ? 'where.phone' : 'where.computer';
export const where = () => t(WHERE);

/** Items joined as a list in the current language ("1, 7" or "1、7"). */
export const listed = (items) => items.join(t('list.and'));

const texts = new Map();
const resolve = (params) => Object.fromEntries(Object.entries(params).map(([k, v]) => [k, typeof v === 'function' ? v() : v]));

/** Sets `element`'s text to `key`'s (none: empty); a param may be a function, called at each rewrite. */
export function say(element, key, params = {}) {
  delete element.dataset.i18n;  // from now on this text is set here, not by translate()
  if (key) texts.set(element, [key, params]);
  else texts.delete(element);
  element.textContent = key ? t(key, resolve(params)) : '';
}

/** Sets `element`'s text to words of no language (a number, a name). */
export function put(element, text) {
  texts.delete(element);
  element.textContent = text;
}

window.addEventListener('localechange', () => {
  for (const [element, [key, params]] of texts) {
    if (element.isConnected) element.textContent = t(key, resolve(params));
    else texts.delete(element);
  }
});
