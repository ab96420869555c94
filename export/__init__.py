"""Keras model -> quantized, self-describing .tflite files, verified against Keras."""
