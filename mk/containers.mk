# Beyond one machine: containers, remote targets, network namespaces (README "Run it in
# containers", "Two machines / network namespaces").
#
#   make compose-config  validate docker-compose.yml with docker-compose (no engine needed)
#   make netns-clean     remove namespaces and veth left by a killed netns run (root)
#
# `make bench TARGET=host:port` and `make bench SCENARIO=netns` live in the top-level Makefile.

.PHONY: compose-config netns-clean

compose-config:
	@scripts/install-deps.sh test
	docker-compose -f docker-compose.yml config --quiet && echo "compose-config: docker-compose.yml is valid"

netns-clean:
	bench/netns/clean_stale.sh
