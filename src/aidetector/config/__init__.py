"""The config layer: the typed schema of params.yaml and conf/, how it is composed and loaded,
and the serve and release settings. It imports only the core modules below it (errors,
labels, preprocessing), never the packages that read it."""
