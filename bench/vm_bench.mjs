// The plugin's per-request work, timed in V8 with no Envoy and no network:
// the release module runs under Node's WebAssembly (the engine Envoy uses)
// behind a small proxy-wasm ABI 0.2.1 host (bench/proxy_wasm_host.mjs); a request
// is one Envoy-like cycle (context create, request headers, response
// headers, delete). A development tool for A/B-ing the plugin's hot path:
// host calls cost what this JS host costs, not what Envoy's C++ costs.
//
//   node bench/vm_bench.mjs <wasm> --config <plugin-config.json>
//        --tokens <file, one token per line> [--requests N] [--rounds R]
//        [--header name:value ...] [--baseline-config <config.json>]
//        [--ab-wasm <other.wasm>] [--slice 10000] [--json <summary.json>]
//
// --baseline-config adds a VM with that configuration (auth off) and
// --ab-wasm a VM of another build with --config; their rounds interleave
// with the main one's in slices of --slice requests, and the report gives
// per-round differences / ratios.
//
// It exits non-zero when the configuration is refused, the VM traps, or any
// request is not forwarded (a refused request would make a wrong
// configuration look fast). Plain Node 20, no npm packages.
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import v8 from "node:v8";
import { header, LOG_KEEP, PluginVm, Refusal } from "./proxy_wasm_host.mjs";

// As Envoy's V8 (proxy-wasm-cpp-host turns Liftoff off): every function is
// compiled by TurboFan up front, so no tier-up happens while timing.
v8.setFlagsFromString("--no-liftoff");

// node:wasi says it is experimental on every run; other warnings still show.
process.removeAllListeners("warning");
process.on("warning", (w) => {
  if (w.name !== "ExperimentalWarning") console.error(`${w.name}: ${w.message}`);
});

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

function usage(message) {
  console.error(`vm_bench: ${message}
usage: node bench/vm_bench.mjs <wasm> --config <config.json> --tokens <file> [--requests N] [--rounds R]
       [--header name:value ...] [--baseline-config <config.json>] [--ab-wasm <other.wasm>]
       [--slice N] [--json <summary.json>]`);
  process.exit(2);
}

function parse() {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        config: { type: "string" },
        tokens: { type: "string" },
        requests: { type: "string", default: "200000" },
        rounds: { type: "string", default: "5" },
        slice: { type: "string", default: "10000" },
        header: { type: "string", multiple: true, default: [] },
        "baseline-config": { type: "string" },
        "ab-wasm": { type: "string" },
        json: { type: "string" },
      },
    });
  } catch (error) {
    usage(error.message);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) usage("one wasm file expected");
  if (values.config === undefined || values.tokens === undefined) usage("--config and --tokens are required");
  const requests = Number(values.requests);
  const rounds = Number(values.rounds);
  const slice = Number(values.slice);
  if (!Number.isInteger(slice) || slice < 1) usage("--slice must be a positive integer");
  if (!Number.isInteger(requests) || requests < 1) usage("--requests must be a positive integer");
  if (!Number.isInteger(rounds) || rounds < 1) usage("--rounds must be a positive integer");
  const extra = values.header.map((h) => {
    const colon = h.indexOf(":", 1); // ":path:/x" names a pseudo-header
    if (colon < 0) usage(`--header ${h}: expected name:value`);
    return [h.slice(0, colon).trim(), h.slice(colon + 1).trim()];
  });
  return { wasm: positionals[0], ...values, requests, rounds, slice, extra };
}

/** One request's headers per token, as Envoy hands them to the filter. */
function requestHeaders(tokens, extra) {
  return tokens.map((token, i) => [
    header(":authority", "127.0.0.1:10000"),
    header(":path", "/bench"),
    header(":method", "GET"),
    header(":scheme", "http"),
    header("user-agent", "vm-bench/1"),
    header("authorization", `Bearer ${token}`),
    header("x-forwarded-proto", "http"),
    header("x-request-id", `8a1f7c3e-0000-4000-8000-${String(i).padStart(12, "0")}`),
    ...extra.map(([name, value]) => header(name, value)),
  ]);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (ns) => ns.toFixed(0).padStart(7);

function fail(vm, message) {
  console.error(`vm_bench: ${message}`);
  if (vm !== null) {
    console.error(`outcomes (${vm.label}): ${JSON.stringify(Object.fromEntries(vm.outcomes))}`);
    if (vm.firstRefusal !== null) console.error(`first refused: ${JSON.stringify(vm.firstRefusal)}`);
    console.error(`plugin log (last ${Math.min(vm.logs.length, LOG_KEEP)} of ${vm.logCount}):`);
    for (const line of vm.logs.slice(-LOG_KEEP)) console.error(`  ${line}`);
  }
  process.exit(1);
}

/** Runs `work`, turning a refusal or a trap into a loud exit. */
function guarded(vm, work) {
  try {
    return work();
  } catch (error) {
    if (error instanceof Refusal) fail(vm, error.message);
    fail(vm, `${vm.label}: the VM trapped: ${error.stack ?? error}`);
  }
}

function checkAllForwarded(vm, phase) {
  const refused = vm.refused();
  if (refused > 0) fail(vm, `${vm.label}: ${refused} request(s) not forwarded during ${phase}`);
}

const perRequestTime = ({ wall, cpu }, n) => ({ wall: wall / n, cpu: cpu / n });

function perRequest(before, after, requests) {
  const calls = {};
  for (const [name, n] of after.calls) {
    const d = n - (before.calls.get(name) ?? 0);
    if (d > 0) calls[name] = d / requests;
  }
  return { calls, bytesIntoVm: (after.bytesIntoVm - before.bytesIntoVm) / requests };
}

/** One configuration's line in the report and the JSON summary. */
function report(result, timed) {
  const { vm, warm, rounds, before } = result;
  const { calls, bytesIntoVm } = perRequest(before, vm.snapshot(), timed);
  const cpu = rounds.map((r) => r.cpu);
  const wall = rounds.map((r) => r.wall);
  const totalCalls = Object.values(calls).reduce((a, b) => a + b, 0);
  const metrics = Object.fromEntries([...vm.metrics].filter(([, m]) => m.value !== 0).map(([k, m]) => [k, m.value]));
  const outcomes = Object.fromEntries(vm.outcomes);
  console.log(`\n[${vm.label}] ${vm.source}`);
  console.log(`  warm pass (each token once):  cpu ${fmt(warm.cpu)}  wall ${fmt(warm.wall)} ns/request`);
  console.log(`  rounds, cpu ns/request:      ${cpu.map(fmt).join(" ")}`);
  console.log(`  rounds, wall ns/request:     ${wall.map(fmt).join(" ")}`);
  console.log(`  median:                       cpu ${fmt(median(cpu))}  wall ${fmt(median(wall))} ns/request ` +
    `(cpu spread ${Math.min(...cpu).toFixed(0)}-${Math.max(...cpu).toFixed(0)})`);
  console.log(`  outcomes: ${Object.entries(outcomes).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  console.log(`  host calls per request (timed rounds): ${totalCalls.toFixed(2)}`);
  for (const [name, n] of Object.entries(calls).sort((a, b) => b[1] - a[1])) {
    console.log(`    ${name.padEnd(40)} ${n >= 0.01 ? n.toFixed(2) : n.toExponential(1)}`);
  }
  console.log(`  bytes copied into the VM per request: ${bytesIntoVm.toFixed(0)}`);
  if (vm.ticks > 0) console.log(`  ticks: ${vm.ticks}`);
  if (vm.unimplemented.length > 0) console.log(`  imports answered "unimplemented": ${vm.unimplemented.join(", ")}`);
  if (Object.keys(metrics).length > 0) {
    console.log(`  plugin counters: ${Object.entries(metrics).map(([k, v]) => `${k}=${v}`).join(" ")}`);
  }
  return {
    wasm: vm.source, warm_ns_per_request: warm, rounds_ns_per_request: rounds,
    median_cpu_ns_per_request: median(cpu), median_wall_ns_per_request: median(wall),
    host_calls_per_request: calls, host_calls_total_per_request: totalCalls,
    bytes_into_vm_per_request: bytesIntoVm, outcomes, metrics, ticks: vm.ticks,
    unimplemented_imports: vm.unimplemented,
  };
}

/** The quartiles of `xs`. */
function quartiles(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return [at(0.25), median(s), at(0.75)];
}

/** Two configurations run side by side, compared round by round and slice
 * by slice (a slice pair ran back to back, so it saw the same neighbours). */
function compare(title, a, b, combine, unit) {
  const digits = unit === "ns" ? 0 : 3;
  const rounds = a.rounds.map((r, i) => combine(r.cpu, b.rounds[i].cpu));
  const slices = a.slices.map((r, i) => combine(r.cpu, b.slices[i].cpu));
  const wall = median(a.rounds.map((r, i) => combine(r.wall, b.rounds[i].wall)));
  const [q1, mid, q3] = quartiles(slices);
  const show = (x) => x.toFixed(digits);
  console.log(`\n${title}: cpu ${show(median(rounds))} ${unit} (median of per-round values ` +
    `${rounds.map(show).join(", ")}; wall ${show(wall)})`);
  console.log(`  per slice pair (${slices.length}): median ${show(mid)} ${unit}, quartiles ${show(q1)}-${show(q3)}`);
  return { cpu: median(rounds), wall, rounds_cpu: rounds, slices_median: mid, slices_quartiles: [q1, q3] };
}

async function main() {
  const args = parse();
  const tokens = readFileSync(args.tokens, "utf8").split("\n").map((t) => t.trim()).filter(Boolean);
  if (tokens.length === 0) usage(`${args.tokens}: no tokens`);
  const requests = requestHeaders(tokens, args.extra);
  const compile = async (file) => ({ file, module: await WebAssembly.compile(readFileSync(file)) });

  const main = await compile(args.wasm);
  const config = readFileSync(args.config);
  const vms = [new PluginVm("auth", main, config)];
  if (args["ab-wasm"] !== undefined) vms.push(new PluginVm("auth, B", await compile(args["ab-wasm"]), config));
  if (args["baseline-config"] !== undefined) {
    vms.push(new PluginVm("auth off", main, readFileSync(args["baseline-config"])));
  }
  const results = [];
  for (const vm of vms) {
    await vm.instantiate();
    guarded(vm, () => vm.configure());
    // The warm pass: every token once (the first sight of each is verified).
    const warm = guarded(vm, () => vm.run(requests, 0, requests.length));
    checkAllForwarded(vm, "the warm pass");
    results.push({ vm, warm: perRequestTime(warm, requests.length), rounds: [], slices: [], before: vm.snapshot() });
  }
  // The rounds. Within a round the configurations take turns, a slice of
  // --slice requests each per turn, so that a neighbour's load (on this
  // shared VM another process on the sibling CPU can slow this one by half)
  // hits them alike; a round's time per request is its slices' sum.
  for (let round = 0; round < args.rounds; round++) {
    const totals = results.map(() => ({ wall: 0, cpu: 0 }));
    for (let done = 0, turn = 0; done < args.requests; done += args.slice, turn++) {
      const count = Math.min(args.slice, args.requests - done);
      // Every other turn in reverse order (A B C, C B A, ...): no
      // configuration always runs first, or always after the same one.
      const order = results.map((_, i) => (turn % 2 === 0 ? i : results.length - 1 - i));
      const took = [];
      for (const i of order) {
        const { vm } = results[i];
        took[i] = guarded(vm, () => vm.run(requests, done, count));
      }
      took.forEach((t, i) => {
        results[i].slices.push(perRequestTime(t, count));
        totals[i].wall += t.wall;
        totals[i].cpu += t.cpu;
      });
    }
    results.forEach((result, i) => {
      checkAllForwarded(result.vm, `round ${round + 1}`);
      result.rounds.push(perRequestTime(totals[i], args.requests));
    });
  }

  const timed = args.rounds * args.requests;
  console.log(`vm_bench: ${tokens.length.toLocaleString()} tokens, ${args.rounds} rounds of ` +
    `${args.requests.toLocaleString()} requests per configuration, interleaved in slices of ` +
    `${args.slice.toLocaleString()} ` +
    `(Node ${process.version}, V8 ${process.versions.v8}); a request is context create, ` +
    "request headers, response headers, delete");
  const summary = { tokens: tokens.length, requests: args.requests, rounds: args.rounds, configs: {} };
  for (const result of results) summary.configs[result.vm.label] = report(result, timed);
  const byLabel = (label) => results.find((r) => r.vm.label === label);
  if (byLabel("auth off") !== undefined) {
    summary.auth_over_off_ns_per_request = compare("auth over auth off, per request", byLabel("auth"),
      byLabel("auth off"), (a, b) => a - b, "ns");
  }
  if (byLabel("auth, B") !== undefined) {
    summary.b_over_a = compare("B / A (auth)", byLabel("auth"), byLabel("auth, B"), (a, b) => b / a, "x");
  }
  if (args.json !== undefined) writeFileSync(args.json, JSON.stringify(summary, null, 2) + "\n");
}

await main();
