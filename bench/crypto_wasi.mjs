// Runs examples/crypto_bench.rs built for wasm32-wasip1 in V8 through
// Node's WASI (the engine Envoy runs the plugin in). Usage:
//   node bench/crypto_wasi.mjs target/wasm32-wasip1/release/examples/crypto_bench.wasm [iterations]
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";

const [file, iterations = "200"] = process.argv.slice(2);
const wasi = new WASI({ version: "preview1", args: ["crypto_bench", iterations] });
const module = await WebAssembly.compile(await readFile(file));
// The plugin library links proxy-wasm's host imports; the bench never calls
// them, so stubs that answer "not found" stand in.
const imports = wasi.getImportObject();
for (const { module: from, name, kind } of WebAssembly.Module.imports(module)) {
  if (from !== "wasi_snapshot_preview1" && kind === "function") {
    (imports[from] ??= {})[name] = () => 1;
  }
}
const instance = await WebAssembly.instantiate(module, imports);
// The library's reactor entry (`_initialize`) is exported too; start the
// command's `_start` alone.
const { memory, _start } = instance.exports;
wasi.start({ exports: { memory, _start } });
