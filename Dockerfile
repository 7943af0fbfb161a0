# syntax=docker/dockerfile:1
# GraphiQL's browser bundles, from the npm registry as pinned by graphiql/package-lock.json (not committed).
FROM node:20-slim AS graphiql
WORKDIR /graphiql
COPY graphiql/package.json graphiql/package-lock.json graphiql/build.mjs ./
RUN npm ci --no-audit --no-fund --loglevel=error && node build.mjs /static

# Build stage: the locked dependencies and the project as wheels (no build tools reach the runtime image).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md requirements.lock ./
COPY gateway ./gateway
COPY --from=graphiql /static ./gateway/static/graphiql
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.lock \
    && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels/project .

# Runtime stage: exactly the locked versions (requirements.lock) and the project, as an unprivileged user.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /wheels /wheels
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir --no-index --find-links=/wheels -r /tmp/requirements.lock \
    && pip install --no-cache-dir --no-index --no-deps /wheels/project/*.whl \
    && rm -rf /wheels /tmp/requirements.lock \
    && useradd --system --uid 10001 --no-create-home gateway
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["leads-gateway"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
