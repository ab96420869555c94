// The page's service worker: after one visit the whole page (code, LiteRT.js, the model) comes from a
// cache, so it opens with the network gone. edge/build.py writes the two lines below: every file of the
// site, and a cache name made from their content. A new build is a new cache, filled whole while the old
// one still serves the open page; it takes over only when the page says so (web/install.js, "reload"),
// and the old cache is deleted then. So code and model always come from the same build.
const CACHE = 'digitcnn-unbuilt';
const FILES = [];
const PREFIX = 'digitcnn-';
const scope = new URL(self.registration.scope);

self.addEventListener('install', (event) => {
  // {cache: 'no-cache'}: every file checked with the server, so never an older copy from the browser's HTTP
  // cache (a static host may let it keep files for minutes), yet not downloaded twice on a first visit.
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(
    FILES.map((file) => new Request(new URL(file, scope), {cache: 'no-cache'})))));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((name) => name.startsWith(PREFIX) && name !== CACHE)
      .map((name) => caches.delete(name))))
    .then(() => self.clients.claim()));
});

self.addEventListener('message', (event) => {
  if (event.data === 'update') self.skipWaiting();
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== scope.origin) return;
  // The page itself, at the folder's address with any query (?lang=, ?server), is index.html.
  const page = event.request.mode === 'navigate' && url.pathname === scope.pathname;
  event.respondWith(caches.open(CACHE)
    .then((cache) => cache.match(page ? new URL('index.html', scope) : event.request, {ignoreSearch: page}))
    .then((cached) => cached ?? fetch(event.request)));
});
