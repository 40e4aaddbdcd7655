# mediagate in a container: the wheel built from this checkout, installed alone into a slim Python.
#   docker build -t mediagate .
#   docker run -p 8400:8400 -v mediagate-data:/data mediagate            # sandbox: no provider keys needed
# Configuration is by environment (README "Going live", "Deploying"); state lives on the /data volume.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS builder
WORKDIR /src
RUN pip install --no-cache-dir "build>=1.2"
COPY pyproject.toml README.md MANIFEST.in ./
COPY engine engine
COPY sandbox sandbox
COPY models.d models.d
COPY providers.d providers.d
COPY schemas schemas
RUN python -m build --wheel --outdir /dist .

FROM python:${PYTHON_VERSION}-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MEDIAGATE_HOST=0.0.0.0 \
    MEDIAGATE_PORT=8400 \
    MEDIAGATE_STATE_DIR=/data
COPY --from=builder /dist/ /tmp/dist/
RUN pip install --no-cache-dir /tmp/dist/mediagate-*.whl \
    && rm -rf /tmp/dist \
    && groupadd --system --gid 10001 mediagate \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin mediagate \
    && mkdir -p /data && chown 10001:10001 /data
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8400
# slim has no curl: the image's own Python asks /healthz (a non-2xx or no answer raises, so the check fails).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MEDIAGATE_PORT', '8400'), timeout=4)"]
ENTRYPOINT ["mediagate", "serve"]
