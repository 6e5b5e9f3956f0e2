"""Reading pairs from disk: scanning, decoding, the record format and the tf.data reader.

Nothing in this package imports Keras, and only `reader` (and `noise.add_background`, when it
is called) import TensorFlow, so scanning and decoding stay cheap (and usable in worker
processes).
"""
