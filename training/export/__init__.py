"""From a fitted model to the ONNX file serving loads: graph builders, their registry, the parity gate."""
