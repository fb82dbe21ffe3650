# Bulk-scoring image for deploy/k8s/scoring/rayjob.yaml: the project at one commit with the
# `ray` extra, on every node of the Ray cluster (head and GPU workers run the same image, as
# Ray requires). PyPI's torch wheel is the CUDA build, which carries its CUDA runtime.
#   docker build -f deploy/docker/score.Dockerfile -t REGISTRY/ai-image-detector-score:SHA .
# Exact release tag, no digest: none could be verified without registry access.
# Dependabot (docker ecosystem) proposes new tags.
FROM python:3.11.13-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
# KubeRay starts Ray through bash; wget is what its probes use on the head and workers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 ray

WORKDIR /app
COPY requirements.txt requirements-extras.txt constraints.txt ./
# s3fs: fsspec's S3 filesystem, for s3:// sources (the release of the pinned fsspec).
RUN pip install -r requirements.txt -r requirements-extras.txt -c constraints.txt "s3fs==2026.9.0"
COPY . .
RUN pip install --no-deps -e . && chown -R ray:ray /app

USER ray
