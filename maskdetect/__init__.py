"""maskdetect: face-mask detection."""
