// Taught samples kept in this browser: IndexedDB, with persistent storage asked for, since Safari clears a
// site's storage (localStorage included) after 7 days unused unless the site is persisted or installed.
// Samples kept by earlier versions of the page in localStorage are moved here on first load.

const DATABASE = 'digitcnn';
const STORE = 'samples';
const KEY = 'taught';
const LEGACY = 'digitcnn.samples';  // localStorage: [{digit, pixels: base64 of 784 bytes}]

let opened = null;
function database() {
  opened ??= new Promise((resolve, reject) => {
    const request = indexedDB.open(DATABASE, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  return opened;
}

/** One request in its own transaction; resolves when the transaction has committed. */
async function transact(mode, act) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const transaction = db.transaction(STORE, mode);
    const request = act(transaction.objectStore(STORE));
    transaction.oncomplete = () => resolve(request.result);
    transaction.onerror = transaction.onabort = () => reject(transaction.error);
  });
}

function legacySamples() {
  const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const kept = localStorage.getItem(LEGACY);
  return kept === null ? null : JSON.parse(kept).map(({digit, pixels}) => ({digit, pixels: fromBase64(pixels)}));
}

/** The samples kept in this browser: [{digit, pixels: Uint8Array(784)}]; unreadable storage counts as none. */
export async function loadSamples() {
  try {
    const kept = await transact('readonly', (store) => store.get(KEY));
    if (kept !== undefined) return kept;
    const legacy = legacySamples();
    if (legacy === null) return [];
    await saveSamples(legacy);
    localStorage.removeItem(LEGACY);  // only once they are safely in IndexedDB
    return legacy;
  } catch {
    return [];
  }
}

/** Replaces the kept samples (none: deletes them); asks once for storage the browser will not clear. */
export async function saveSamples(samples) {
  if (samples.length === 0) return transact('readwrite', (store) => store.delete(KEY));
  await transact('readwrite', (store) => store.put(samples.map(({digit, pixels}) => ({digit, pixels})), KEY));
  if (navigator.storage?.persist && !(await navigator.storage.persisted())) await navigator.storage.persist();
}
