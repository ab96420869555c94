"""On-device runner: numpy, Pillow and ai-edge-litert only, never TensorFlow or Keras.

The small pieces every stage shares (errors, atomic writes, the model metadata schema) live
here too, because this is the one package that every install has.
"""
