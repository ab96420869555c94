// The page's words in the reader's language: English and Simplified Chinese (the article's readers).
// Each part of the page keeps its own table in web/strings/ and registers it here; `t` looks a key up.
// The language comes from `?lang=`, then the reader's last choice, then the browser's languages.

export const LOCALES = {en: 'English', 'zh-CN': '简体中文'};
const STORE = 'digitcnn.lang';
const tables = {en: {}, 'zh-CN': {}};
let current = initialLocale();

/** The supported locale closest to a list of BCP 47 tags: any Chinese tag is zh-CN, all else English. */
export function pickLocale(tags) {
  return tags.some((tag) => tag.toLowerCase().startsWith('zh')) ? 'zh-CN' : 'en';
}

function initialLocale() {
  const asked = new URLSearchParams(location.search).get('lang');
  if (asked in LOCALES) return asked;
  let kept = null;
  try {
    kept = localStorage.getItem(STORE);
  } catch {
    // storage refused (private mode): the browser's languages decide
  }
  return kept in LOCALES ? kept : pickLocale(navigator.languages ?? [navigator.language ?? 'en']);
}

/** Adds one part's strings: `{en: {key: text}, 'zh-CN': {key: text}}`; texts may hold `{name}` slots. */
export function addStrings(table) {
  for (const [locale, entries] of Object.entries(table)) Object.assign(tables[locale], entries);
}

/** Every key of one locale that another lacks: what a test lists as untranslated. */
export function missingKeys() {
  const keys = (locale) => new Set(Object.keys(tables[locale]));
  const [en, zh] = [keys('en'), keys('zh-CN')];
  return {'zh-CN': [...en].filter((k) => !zh.has(k)), en: [...zh].filter((k) => !en.has(k))};
}

export const locale = () => current;

/** The text for `key` in the current language, its `{name}` slots filled from `params`. */
export function t(key, params = {}) {
  const text = tables[current][key] ?? tables.en[key];
  if (text === undefined) throw new Error(`no text for "${key}"`);
  return text.replace(/\{(\w+)\}/g, (slot, name) => (name in params ? String(params[name]) : slot));
}

/**
 * Writes the texts of the elements under `root` that name a key: `data-i18n` sets the text,
 * `data-i18n-label` the aria-label, `data-i18n-title` the title.
 */
export function translate(root = document) {
  for (const [attribute, apply] of [
    ['i18n', (el, text) => { el.textContent = text; }],
    ['i18nLabel', (el, text) => el.setAttribute('aria-label', text)],
    ['i18nTitle', (el, text) => el.setAttribute('title', text)],
  ]) {
    const selector = `[data-${attribute.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}]`;
    for (const el of root.querySelectorAll(selector)) apply(el, t(el.dataset[attribute]));
  }
  document.documentElement.lang = current;
}

/** Switches the language, keeps the choice, rewrites the page and tells the views (`localechange`). */
export function setLocale(next) {
  if (!(next in LOCALES)) throw new Error(`unsupported language ${next}`);
  current = next;
  try {
    localStorage.setItem(STORE, next);
  } catch {
    // not kept: the choice lasts for this visit
  }
  translate();
  window.dispatchEvent(new CustomEvent('localechange', {detail: next}));
}
