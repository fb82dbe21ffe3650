# MLflow tracking server for deploy/k8s/training/mlflow.yaml: Postgres driver and boto3
# for S3 artifacts, Flask-WTF for the basic-auth app (mlflow[auth]), the same MLflow
# release the project pins.
#   docker build -f deploy/docker/mlflow.Dockerfile -t REGISTRY/ai-image-detector-mlflow:3.17.2 .
# Exact release tag, no digest: none could be verified without registry access.
# Dependabot (docker ecosystem) proposes new tags.
FROM python:3.11.13-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
RUN pip install "mlflow[auth]==3.17.2" "Flask-WTF==1.3.0" "psycopg2-binary==2.9.13" "boto3==1.44.8" \
    && useradd --uid 1000 mlflow

USER mlflow
ENTRYPOINT ["mlflow"]
