# iolab in a container: the same Debian 12 packages and the same build as on a laptop.
#
# The image is built by the steps a user runs by hand: scripts/install-deps.sh installs the
# Debian packages (all of them: the one image serves the server, bench and charts services of
# docker-compose.yml), then `make build` configures and builds into build/. Nothing is
# installed any other way, so the image can only drift from `make` if the Makefile does.
# tests/harness/containers_test.py checks that these RUN lines name a deps set and make targets
# that exist. No Docker engine runs on the project's machines: see README "Run it in containers".
#
#   docker build -t iolab:local .                       (docker-compose build does the same)
#   docker build --build-arg RUN_TESTS=1 -t iolab:local .   also runs `make test` in the build
FROM debian:bookworm

ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
WORKDIR /iolab

# Packages first, from the script alone, so editing the sources does not reinstall them.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh all && rm -rf /var/lib/apt/lists/*

COPY . .
RUN make build

ARG RUN_TESTS=0
RUN if [ "$RUN_TESTS" = 1 ]; then make test; fi

# The compose services give their own commands; alone, the image serves one model.
EXPOSE 8080
CMD ["build/bin/server_epoll_et", "--bind", "0.0.0.0", "--port", "8080"]
