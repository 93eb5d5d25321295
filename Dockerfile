# One image for every scheme (configured by AUTHBENCH_* environment variables) and for Locust.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY targets targets
COPY loadtests loadtests
COPY analysis analysis
RUN pip install --no-cache-dir .
ENV AUTHBENCH_HOST=0.0.0.0 \
    AUTHBENCH_PORT=8000 \
    AUTHBENCH_KEYS_DIR=/keys
EXPOSE 8000 8089
CMD ["python", "-m", "targets"]
