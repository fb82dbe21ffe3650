"""ai-image-detector: train, register, promote and serve real-vs-AI-generated image classifiers."""

__version__ = "0.1.0"

CLASS_NAMES: tuple[str, str] = ("REAL", "FAKE")
"""Label order used everywhere: index 0 is REAL, index 1 is FAKE."""
