"""Real photos, scans and screen drawings of a digit -> 28x28 arrays framed exactly like MNIST.

A model trained on MNIST only reads digits that look like MNIST: white ink on black, the digit
scaled so its longer side is 20 px, anti-aliased grey edges, centre of mass at the centre of a
28x28 field. Photos differ in every one of those, plus lighting, paper texture and specks, so this
package undoes each difference in turn. numpy and Pillow only: this runs on the device.

Data flows one way, one module per stage, with `filters` (numpy tools, no digit knowledge) beneath:

- `load`: file or bytes -> decoded image (formats, a byte budget, EXIF) -> gray array (every mode, alpha);
- `ink`: polarity, background removal (morphological opening, so uneven light and paper tone drop
  out), hysteresis threshold above the noise floor, connected components, soft ink intensity;
- `frame`: keep the digit and drop specks, then crop, scale to 20 px, centre by mass (`to_mnist`).
"""

from edge.preprocess.filters import Box, Component, components, label
from edge.preprocess.frame import SIZE, NoDigit, centre, frame_digit, is_mnist_framed, select_digit, to_mnist
from edge.preprocess.ink import Ink, find_ink, ink_is_dark, ink_mask, working_gray
from edge.preprocess.load import DECODE_BUDGET, FORMATS, LOAD_SIDE, MAX_PIXELS, SUFFIXES, load_image, to_gray

__all__ = ["Box", "Component", "DECODE_BUDGET", "FORMATS", "Ink", "LOAD_SIDE", "MAX_PIXELS", "NoDigit", "SIZE",
           "SUFFIXES", "centre", "components", "find_ink", "frame_digit", "ink_is_dark", "ink_mask", "is_mnist_framed", "label",
           "load_image", "select_digit", "to_gray", "to_mnist", "working_gray"]
