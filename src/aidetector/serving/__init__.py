"""Serving the champion model with BentoML: limits, cache, metrics, logs and a web page.

service.py is the BentoML entry point; package.py imports the champion into the BentoML
model store and builds the Bento.
"""
