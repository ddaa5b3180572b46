# reconciler in a small image: build a wheel of this repository, install it into a slim
# Python image, run as an unprivileged user. Build: docker build -t reconciler:dev .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client gnupg \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 65532 --user-group --home-dir /var/lib/reconciler --create-home reconciler
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 65532:65532
WORKDIR /var/lib/reconciler
EXPOSE 8080
ENTRYPOINT ["reconciler"]
CMD ["run", "--config", "/etc/reconciler/config.yaml"]
