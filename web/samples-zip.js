// The page's taught samples as a zip of `<digit>_<n>.png` files: unzip it and `digitcnn teach` the folder
// on a Pi or a laptop to adapt a model there. 28x28 8-bit grayscale PNGs, which the edge preprocessing
// passes through unchanged, so both sides adapt to exactly the same pixels. Stored (uncompressed)
// blocks throughout: a few KB, and no compressor needed.

const CRC_TABLE = Uint32Array.from({length: 256}, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Little- or big-endian fields of the given byte widths, as bytes (Uint8Array). */
function fields(values, littleEndian) {
  const out = [];
  for (const [value, width] of values) {
    for (let i = 0; i < width; i++) out.push((value >>> (8 * (littleEndian ? i : width - 1 - i))) & 0xff);
  }
  return Uint8Array.from(out);
}

const concat = (parts) => Uint8Array.from(parts.flatMap((p) => Array.from(p)));

function pngChunk(type, data) {
  const body = concat([Array.from(type, (c) => c.charCodeAt(0)), data]);
  return concat([fields([[data.length, 4]], false), body, fields([[crc32(body), 4]], false)]);
}

/** A side x side 8-bit grayscale PNG of `pixels` (row-major). */
export function grayPng(pixels, side = 28) {
  const raw = concat(Array.from({length: side}, (_, y) => [0, ...pixels.subarray(y * side, (y + 1) * side)]));
  let a = 1, b = 0;  // Adler-32 of the raw rows, which end the zlib stream
  for (const v of raw) { a = (a + v) % 65521; b = (b + a) % 65521; }
  const zlib = concat([[0x78, 0x01, 0x01], fields([[raw.length, 2], [~raw.length & 0xffff, 2]], true), raw,
    fields([[((b << 16) | a) >>> 0, 4]], false)]);
  return concat([[0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
    pngChunk('IHDR', fields([[side, 4], [side, 4], [8, 1], [0, 1], [0, 1], [0, 1], [0, 1]], false)),
    pngChunk('IDAT', zlib), pngChunk('IEND', [])]);
}

/** Each sample's name, as the zip and the page call it: <digit>_<n>, numbered per digit from 01. */
export function sampleNames(samples) {
  const counts = {};
  return samples.map(({digit}) => {
    counts[digit] = (counts[digit] ?? 0) + 1;
    return `${digit}_${String(counts[digit]).padStart(2, '0')}`;
  });
}

/** A zip (Blob) of the samples [{digit, pixels}] as <name>.png (`sampleNames`). */
export function samplesZip(samples) {
  const names = sampleNames(samples);
  const files = samples.map(({pixels}, i) => ({name: Uint8Array.from(`${names[i]}.png`, (c) => c.charCodeAt(0)),
                                              data: grayPng(pixels)}));
  const local = [], central = [];
  let offset = 0;
  for (const {name, data} of files) {
    // version, flags, method (stored), time, date (1980-01-01), crc, sizes, name length, extra length
    const common = [[20, 2], [0, 2], [0, 2], [0, 2], [0x21, 2], [crc32(data), 4], [data.length, 4],
      [data.length, 4], [name.length, 2], [0, 2]];
    local.push(fields([[0x04034b50, 4], ...common], true), name, data);
    central.push(fields([[0x02014b50, 4], [20, 2], ...common, [0, 2], [0, 2], [0, 2], [0, 4], [offset, 4]], true), name);
    offset += 30 + name.length + data.length;
  }
  const directory = concat(central);
  const end = fields([[0x06054b50, 4], [0, 2], [0, 2], [files.length, 2], [files.length, 2], [directory.length, 4],
    [offset, 4], [0, 2]], true);
  return new Blob([...local, directory, end], {type: 'application/zip'});
}
