# seispipe and seispipe-torch in one image, for `seispipe k8s` (Kubernetes
# Indexed Jobs) and any container runner. The build steps are the Makefile's:
# `make build` creates the venv from requirements.txt (libtorch comes from
# PyPI's torch wheel, CUDA libraries included on x86-64) and builds the
# workspace with LIBTORCH pointing into it. The runtime image keeps the venv at
# the same path, because seispipe-torch finds libtorch through its rpath.
#
#   docker build -t seispipe .
#   docker run --rm -v "$PWD:/work" seispipe seispipe check pipelines/demo.toml
FROM rust:1.89-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make build VENV=/opt/seispipe/venv

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 libgomp1 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/seispipe/venv /opt/seispipe/venv
COPY --from=build /src/target/release/seispipe /src/target/release/seispipe-torch /usr/local/bin/
WORKDIR /work
CMD ["seispipe", "--help"]
