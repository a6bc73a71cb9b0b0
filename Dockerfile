# itl on a CUDA GPU:
#   docker build -t itl .
#   docker run --gpus all -v DATA:/data -v RUNS:/runs itl pytest experiments -k section5 --scale small
# The Python packages come from the hashed lock (requirements.lock) through scripts/install.sh,
# the very script CI runs. torch 2.14.1 (CUDA 13.0 build) brings its own CUDA libraries; the
# base image supplies the CUDA 13.0 user space that matches them. Ubuntu 22.04's own python3.11
# is a release candidate (3.11.0~rc1), so Python 3.11 comes from the deadsnakes PPA.
FROM nvidia/cuda:13.0.1-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ITL_DATA=/data \
    ITL_RUNS=/runs \
    ITL_REPORTS=/home/itl/app/reports

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common gpg-agent \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv wordnet-base git \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 itl \
 && mkdir -p /data /runs \
 && chown itl:itl /data /runs
USER 1000:1000
WORKDIR /home/itl/app

COPY --chown=itl:itl requirements.lock pyproject.toml README.md ./
COPY --chown=itl:itl scripts ./scripts
COPY --chown=itl:itl itl ./itl
RUN PYTHON=python3.11 scripts/install.sh /home/itl/venv
COPY --chown=itl:itl . .

ENV PATH=/home/itl/venv/bin:$PATH
VOLUME ["/data", "/runs"]
CMD ["pytest", "experiments", "--scale", "small"]
