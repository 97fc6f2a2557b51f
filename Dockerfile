# The deploy-compare toolkit image: train, export, parity, in-process floor, load generation (locust),
# report. The servers run from their own official images (see docker-compose.yml).
#
# Built from python:3.11-slim-bookworm + Debian's Java 17 (TorchServe's frontend, for native serving
# inside this image) and the pinned requirements.lock. On the machine this project was developed on no
# image can be pulled (no registry access, no Docker engine), so this file is checked by tests
# (structure and consistency with docker-compose.yml), not built there.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
# torch==2.13.0 must be the CPU wheel (never a CUDA build)
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.lock
COPY core ./core
COPY deploy_compare ./deploy_compare
COPY models ./models
COPY serving ./serving
COPY loadtests ./loadtests
RUN pip install --no-deps --no-build-isolation -e .

RUN useradd --create-home --uid 1000 dc
USER dc
WORKDIR /results
CMD ["deploy-compare", "--help"]
