"""One module per DVC stage (`python -m aidetector.stages.<name>`), each with main().

A stage module imports only the code its stage runs, so dvc.yaml's deps (the module's import
closure, checked by tests/test_dvc_deps.py) change only when that code does: an edit under
serving/, release/ or batch/ re-runs no training stage. The `aidetector` CLI runs the same
functions.
"""
