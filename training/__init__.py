"""Training pipeline: public labelled tweets -> evaluated, ONNX-exported sentiment model."""
