// Reads constant tensors (weights, biases) and their quantization straight from a .tflite flatbuffer,
// so the Inside view shows the model file's own numbers: LiteRT.js runs a model but does not hand out
// its weights. Only what that needs: Model.subgraphs[0].tensors and Model.buffers (schema.fbs).

const TYPES = {0: Float32Array, 2: Int32Array, 3: Uint8Array, 9: Int8Array};  // TensorType: FLOAT32, INT32, UINT8, INT8

/** A flatbuffer table at `at`: field(i) gives the absolute position of field i, or null when absent. */
function table(view, at) {
  const vtable = at - view.getInt32(at, true);
  const size = view.getUint16(vtable, true);
  return {
    field: (i) => {
      const slot = 4 + 2 * i;
      const offset = slot < size ? view.getUint16(vtable + slot, true) : 0;
      return offset ? at + offset : null;
    },
  };
}

const deref = (view, at) => at + view.getUint32(at, true);

/** [start, length] of the vector a field points to. */
function vector(view, at) {
  const start = deref(view, at);
  return [start + 4, view.getUint32(start, true)];
}

function tables(view, at) {
  const [start, length] = vector(view, at);
  return Array.from({length}, (_, i) => table(view, deref(view, start + 4 * i)));
}

function numbers(view, at, Type) {
  if (at === null) return new Type(0);
  const [start, length] = vector(view, at);
  const from = view.byteOffset + start;
  return new Type(view.buffer.slice(from, from + length * Type.BYTES_PER_ELEMENT));
}

/**
 * The model's tensors: tensor(i) -> {shape, values (typed array), scales, zeroPoints}, values empty for
 * tensors the model computes rather than stores.
 */
export function readTflite(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (String.fromCharCode(...bytes.subarray(4, 8)) !== 'TFL3') throw new Error('not a TFLite model');
  const model = table(view, deref(view, 0));
  const tensors = tables(view, model.field(2))[0].field(0);
  const list = tables(view, tensors);
  const buffers = tables(view, model.field(4));
  return (index) => {
    const tensor = list[index];
    const scalar = (i, read) => (tensor.field(i) === null ? 0 : read(tensor.field(i)));  // absent: the default, 0
    const Type = TYPES[scalar(1, (at) => view.getInt8(at))] ?? Float32Array;
    const buffer = buffers[scalar(2, (at) => view.getUint32(at, true))];
    let values = numbers(view, buffer.field(0), Uint8Array);
    const offset = buffer.field(1) === null ? 0 : Number(view.getBigUint64(buffer.field(1), true));
    if (values.length === 0 && offset > 1) {  // stored after the flatbuffer (models over 2 GB)
      values = bytes.slice(offset, offset + Number(view.getBigUint64(buffer.field(2), true)));
    }
    const quantization = tensor.field(4) === null ? null : table(view, deref(view, tensor.field(4)));
    return {
      shape: Array.from(numbers(view, tensor.field(0), Int32Array)),
      values: new Type(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)),
      scales: quantization ? Array.from(numbers(view, quantization.field(2), Float32Array)) : [],
      zeroPoints: quantization ? Array.from(numbers(view, quantization.field(3), BigInt64Array), Number) : [],
    };
  };
}
