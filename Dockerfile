# The Copilot web app. docker-compose.yml runs it next to PostgreSQL, Redis, Weaviate and
# Elasticsearch. No torch: embeddings run on ONNX Runtime. With the torch extra, set
# PIP_EXTRA_INDEX_URL to a CPU-only torch index to keep the image small.
FROM python:3.11-slim

ARG PIP_EXTRA_INDEX_URL=""
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 ORT_DISABLE_TELEMETRY=1 PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL} \
    COPILOT_DATA_DIR=/data COPILOT_HOST=0.0.0.0 COPILOT_PORT=8000

WORKDIR /app
COPY pyproject.toml README.md ./
COPY copilot ./copilot
RUN pip install --no-cache-dir -e .
COPY . .

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
# Migrations run on every start (they are idempotent); then the app serves.
CMD ["sh", "-c", "copilot setup --no-demo-admin && copilot serve"]
