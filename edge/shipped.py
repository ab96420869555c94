"""The model that ships inside the package: it answers whenever no model is given.

It is the default recipe's int8 export, embedded metadata and all, rebuilt by tools/ship_model.py.
"""

from __future__ import annotations

from pathlib import Path

SHIPPED_MODEL = Path(__file__).resolve().parent / "models" / "default_int8.tflite"
