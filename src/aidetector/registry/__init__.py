"""MLflow Model Registry: register FP32/FP16 versions, promote by aliases, export and publish.

Everything downstream (export, packaging, serving) asks for `models:/NAME@champion`;
the aliases are the only state that says which version is in production.
"""

CHAMPION = "champion"
CHALLENGER = "challenger"
PRECISIONS: tuple[str, str] = ("fp32", "fp16")
