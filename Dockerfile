# The plugin as an OCI image, the way Higress and Istio load Wasm plugins:
# one layer holding plugin.wasm. Build the .wasm first (make build); make oci
# does both.
FROM scratch
COPY target/wasm32-wasip1/release/edge_auth.wasm ./plugin.wasm
