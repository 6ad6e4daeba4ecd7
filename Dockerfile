# shim: a Sentry-compatible error ingestion server, SQLite in the /data volume by default.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SHIM_DATA_DIR=/data \
    SHIM_HOST=0.0.0.0 \
    SHIM_PORT=8000

WORKDIR /app
COPY pyproject.toml README.md ./
COPY requirements/lock.txt ./requirements/lock.txt
COPY shim ./shim
# The locked versions the test suite passed with; the supabase extra so that
# SHIM_DATABASE_URL=supabase works in the image too.
RUN pip install --no-cache-dir -c requirements/lock.txt '.[supabase]' \
    && useradd --system --uid 10001 --home-dir /data shim \
    && mkdir -p /data && chown shim /data

USER shim
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('SHIM_PORT', '8000') + '/healthz', timeout=2)"
CMD ["shim", "serve", "--host", "0.0.0.0"]
