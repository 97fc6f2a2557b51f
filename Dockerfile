# The deploy-compare toolkit image: train, export, parity, in-process floor, load generation (locust),
# report. Built by `make images` (serving/images.py), which gives BASE_IMAGE (Python 3.11 + Java 17 on
# Debian bookworm: python:3.11-slim-bookworm, or a local debootstrap base where no registry is reachable)
# and fills .cache/images/wheelhouse with the locked wheels. Everything installs offline
# (`docker build --network none`, pip --no-index): no index, proxy or certificate setting enters the image.
ARG BASE_IMAGE=deploy-compare/base:local

# Stage 1: the virtualenv, installed from the wheelhouse (the wheels stay in this stage only).
FROM ${BASE_IMAGE} AS venv
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY .cache/images/wheelhouse /wheels
COPY requirements.lock /tmp/requirements.lock
# torch==2.13.0 is the CPU wheel: the wheelhouse holds no other (serving/images.py checks it)
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-index --find-links /wheels --no-compile -r /tmp/requirements.lock \
 && /opt/venv/bin/pip check \
 && rm -rf /opt/venv/lib/python3.11/site-packages/tensorflow/include
# (TensorFlow's C++ headers, 430 MB, serve only custom-op builds; torch's stay: torch.compile's inductor needs them)
# this stage stays behind as an untagged image: labelled with the build's id so `make images` removes it (last,
# so the layers above stay cached)
ARG DC_BUILD=""
LABEL deploy-compare.build=${DC_BUILD}

# Stage 2: the venv + the project's sources.
FROM ${BASE_IMAGE}
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DEPLOY_COMPARE_CACHE=/opt/deploy-compare/cache
COPY --from=venv /opt/venv /opt/venv
WORKDIR /app
COPY requirements.lock pyproject.toml setup.py README.md ./
COPY core ./core
COPY deploy_compare ./deploy_compare
COPY models ./models
COPY serving ./serving
COPY loadtests ./loadtests
# TorchServe's gRPC stubs and TF Serving's config protos compiled now, into DEPLOY_COMPARE_CACHE (read-only at
# run time, like /app: nothing is written beside the sources)
RUN pip install --no-index --no-deps --no-build-isolation -e . \
 && python -c "from deploy_compare.serving import grpc_stubs; from deploy_compare.serving.tfserving import protos; \
grpc_stubs.load(); protos.messages()" \
 && useradd --create-home --uid 1000 dc
USER 1000:1000
WORKDIR /results
CMD ["deploy-compare", "--help"]
