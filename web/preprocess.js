// edge/preprocess `to_mnist`, ported to the browser: any drawing or photo -> 28x28 MNIST framing.
//
// A faithful port, step for step and with the same constants, so the page feeds the model what
// `cli.py predict` would; tests/test_web.py checks both agree. The stages live in preprocess/, one
// module per Python module: load.js -> ink.js -> frame.js, with filters.js beneath. Pillow's
// resampling (reduce, resize with BOX, BILINEAR and BICUBIC in 'F' mode) is reproduced exactly,
// and numpy's float32 arithmetic is mirrored with Math.fround where it can change a decision.
// Not ported: decoding (the browser decodes; JPEG decoders differ slightly), Pillow's JPEG draft
// mode, and image modes a canvas cannot hold (16-bit, palette): the input is always RGBA ImageData.

export {SIZE, toMnist} from './preprocess/frame.js';
