# One image for every scheme (configured by AUTHBENCH_* environment variables) and for Locust.
# BASE_IMAGE is any image with Python 3.11 and venv: the upstream python:3.11-slim by default,
# or the local stand-in deploy/local-images.sh builds when no registry answers.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY authbench authbench
COPY common common
COPY targets targets
COPY loadtests loadtests
COPY analysis analysis
RUN python3 -m venv /opt/authbench && /opt/authbench/bin/pip install --no-cache-dir --quiet . \
    && mkdir -p /keys
ENV PATH=/opt/authbench/bin:$PATH \
    AUTHBENCH_HOST=0.0.0.0 \
    AUTHBENCH_PORT=8000 \
    AUTHBENCH_KEYS_DIR=/keys
EXPOSE 8000 8089
CMD ["python", "-m", "targets"]
