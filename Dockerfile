# A plain single-layer image (FROM scratch, plugin.wasm) for hosts that only
# have docker/podman. Istio and Higress load it, but it is not the Higress
# Wasm plugin image layout (no spec.yaml or README layers): `make oci`
# builds that one without any container engine (scripts/oci_image.py).
# Build the .wasm first (make build); .dockerignore keeps the context to it.
FROM scratch
COPY target/wasm32-wasip1/release/edge_auth.wasm ./plugin.wasm
