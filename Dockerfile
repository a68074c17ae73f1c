# The circuitwatch worker image (Faust on Kafka). Build: docker build -t circuitwatch .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY circuitwatch ./circuitwatch
COPY streams ./streams
COPY metrics ./metrics
COPY dashboards ./dashboards
COPY alerts ./alerts
RUN pip install --no-cache-dir --prefix=/install ".[kafka]"

FROM python:3.11-slim
COPY --from=build /install /usr/local
RUN useradd --system --uid 10001 --home-dir /var/lib/circuitwatch --create-home circuitwatch
USER circuitwatch
WORKDIR /var/lib/circuitwatch
# Inside a container /metrics must listen beyond loopback so Prometheus can scrape it;
# publish the port only to 127.0.0.1 on the host (see docker-compose.yml).
ENV CIRCUITWATCH_METRICS_HOST=0.0.0.0 \
    CIRCUITWATCH_METRICS_PORT=9464 \
    CIRCUITWATCH_DATADIR=/var/lib/circuitwatch/data
EXPOSE 9464
ENTRYPOINT ["circuitwatch"]
CMD ["worker"]
