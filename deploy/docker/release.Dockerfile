# Webhook receiver for deploy/k8s/training/release-receiver.yaml (`aidetector webhook
# serve`): the project's code and config with only what the receiver imports, no torch, MLflow
# or BentoML (tests/release/test_receiver_image.py checks that list against the imports).
#   docker build -f deploy/docker/release.Dockerfile -t REGISTRY/ai-image-detector-release:SHA .
# Exact release tag, no digest: none could be verified without registry access.
# Dependabot (docker ecosystem) proposes new tags.
FROM python:3.11.13-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY constraints.txt ./
# The versions come from constraints.txt, the same pins as everywhere else.
RUN pip install -c constraints.txt \
        hydra-core omegaconf pydantic PyYAML limits python-json-logger \
        starlette uvicorn httpx cachetools \
    && useradd --uid 1000 receiver
COPY pyproject.toml README.md params.yaml ./
COPY conf ./conf
COPY src ./src
RUN pip install --no-deps . && rm -rf build

USER receiver
ENTRYPOINT ["aidetector"]
CMD ["webhook", "serve"]
