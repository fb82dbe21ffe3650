# Training image for deploy/k8s/training/ddp-job.yaml: the project at one commit, with
# PyPI's CUDA build of torch (its nvidia-* wheels carry the CUDA runtime; the node's
# driver comes through the NVIDIA container toolkit).
#   docker build -f deploy/docker/train.Dockerfile -t REGISTRY/ai-image-detector-train:SHA .
# Exact release tag, no digest: none could be verified without registry access.
# Dependabot (docker ecosystem) proposes new tags.
FROM python:3.11.13-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 BENTOML_DO_NOT_TRACK=True
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 trainer

WORKDIR /app
COPY requirements.txt constraints.txt ./
RUN pip install -r requirements.txt -c constraints.txt "dvc-s3==3.3.0"
COPY . .
RUN pip install --no-deps -e . && chown -R trainer:trainer /app

USER trainer
