"""ai-image-detector: train, register, promote and serve real-vs-AI-generated image classifiers."""

__version__ = "0.1.0"
