# The job server's image, built from the package of bin/server_package.sh (make image):
#   make package && docker build -t spark-jobserver-python:0.1.0 .
#   docker run -p 8090:8090 -v jobserver-work:/var/lib/jobserver spark-jobserver-python:0.1.0
#   docker run ... -v $PWD/server.conf:/etc/jobserver.conf spark-jobserver-python:0.1.0 /etc/jobserver.conf
# The server runs in the foreground as user jobserver (SIGTERM stops it and its contexts), its
# default work dir (metadata, binaries, contexts' logs) under /var/lib/jobserver (a volume), and
# contexts run spark-submit from pyspark on a Java 17 runtime (set spark.home for another Spark).
# The package's wheels are built for CPython 3.11: keep the base image's Python at the packaging
# Python's minor version.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /var/lib/jobserver jobserver

ARG PACKAGE=dist/spark-jobserver-python-0.1.0.tar
COPY ${PACKAGE} /tmp/package.tar
RUN mkdir /tmp/package \
    && tar xf /tmp/package.tar -C /tmp/package --strip-components=1 \
    && PYTHON=/usr/local/bin/python3.11 /tmp/package/install.sh --no-start /opt/jobserver \
    && rm -rf /tmp/package /tmp/package.tar \
    && /opt/jobserver/current/venv/bin/python -m compileall -q -j 0 /opt/jobserver/current/venv/lib

USER jobserver
WORKDIR /var/lib/jobserver
VOLUME /var/lib/jobserver
EXPOSE 8090
# No argument: conf/defaults.conf alone; give a config file's path as the argument.
ENTRYPOINT ["/opt/jobserver/current/venv/bin/jobserver"]
