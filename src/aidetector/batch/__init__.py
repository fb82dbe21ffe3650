"""Bulk scoring: a folder or bucket of images scored offline by a registered model.

sources.py lists and reads what to score, decode.py turns one file into the model's input
(or the reason it cannot be), scorer.py runs serving's engine on a batch and builds the
rows, writers.py appends rows to Parquet, CSV or JSONL and reads back what was scored,
local.py runs it on one machine, ray_engine.py on a Ray cluster; command.py is the CLI.
"""
