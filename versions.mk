# The one place where tool versions are pinned.
# OPA: newest v1 release served by the Go module proxy; never older than v1.21.3
# (fixes GHSA-g2pf-6v5v-qcc8, a bundle-signature bypass).
OPA_VERSION := 1.22.4
# oras: the OCI registry client the agent's OCI tests push bundles with; newest the Go module proxy serves.
ORAS_VERSION := 1.3.6
