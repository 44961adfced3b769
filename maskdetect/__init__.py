"""maskdetect: face-mask detection (with_mask / without_mask)."""

import os

# TensorFlow's C++ start-up chatter (no GPU here, CPU instruction sets) hides real output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
