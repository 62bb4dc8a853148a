# riskwatch worker / CLI image (docker-compose.yml builds it for the worker and migrations).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY riskwatch ./riskwatch
COPY streams ./streams
COPY detectors ./detectors
COPY sinks ./sinks
COPY dashboards ./dashboards
RUN pip install . && useradd --create-home riskwatch && mkdir /data && chown riskwatch /data
USER riskwatch
VOLUME /data
ENTRYPOINT ["riskwatch"]
CMD ["--help"]
