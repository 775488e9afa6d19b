# The dossier-stream worker image (also runs the one-shot `topics create` and
# `init-db` of docker-compose.yml). Build: docker build -t dossier-stream .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged user owning only the worker's data directory.
RUN groupadd --system --gid 10001 dossier \
    && useradd --system --uid 10001 --gid dossier --no-create-home \
       --home-dir /var/lib/dossier-stream --shell /usr/sbin/nologin dossier \
    && install -d -o dossier -g dossier -m 0750 /var/lib/dossier-stream

# Only what the package build needs (see .dockerignore): streams/ holds the
# topic catalog that src/dossier_stream/data/topics.yaml links to. Every
# dependency installs from a binary wheel, so no compiler is needed.
WORKDIR /tmp/build
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY src ./src
RUN pip install . && rm -rf /tmp/build

USER dossier:dossier
WORKDIR /var/lib/dossier-stream
ENV DOSSIER_DATA_DIR=/var/lib/dossier-stream \
    DOSSIER_METRICS_HOST=0.0.0.0 \
    DOSSIER_METRICS_PORT=9108
EXPOSE 9108

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('DOSSIER_METRICS_PORT', '9108'), timeout=4)"]

ENTRYPOINT ["dossier-stream"]
CMD ["worker"]
