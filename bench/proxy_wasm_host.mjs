// A proxy-wasm ABI 0.2.1 host in JavaScript for one plugin VM, as much of
// it as edge-auth imports (src/host/abi.rs declares the calls, and
// src/plugin/exports.rs the callbacks): header maps, properties, shared
// data with CAS, metrics, logs, local replies, ticks; every import counted.
// Used by bench/vm_bench.mjs. Answers follow Envoy / proxy-wasm-cpp-host
// where the plugin could tell the difference.
import { WASI } from "node:wasi";

// ---------------------------------------------------------------------------
// The ABI's numbers (proxy-wasm 0.2.1; src/host/abi.rs declares the calls)
// ---------------------------------------------------------------------------

const OK = 0;
const NOT_FOUND = 1;
const BAD_ARGUMENT = 2;
const CAS_MISMATCH = 8;
const UNIMPLEMENTED = 12;

const MAP_REQUEST = 0;
const MAP_RESPONSE = 2;
const BUFFER_PLUGIN_CONFIGURATION = 7;
const ACTION_CONTINUE = 0;
const ROOT_CONTEXT = 1;
const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "critical"];

const utf8 = new TextEncoder();
const text = new TextDecoder();

/** A header list entry: lower-case name as text, name and value as bytes. */
export function header(name, value) {
  const lower = name.toLowerCase();
  return [lower, utf8.encode(lower), typeof value === "string" ? utf8.encode(value) : value];
}

/** Decodes the ABI's serialized map (u32 count, u32 lengths, key\0value\0). */
function parsePairs(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4) return [];
  const count = view.getUint32(0, true);
  const pairs = [];
  let at = 4 + count * 8;
  for (let i = 0; i < count; i++) {
    const k = view.getUint32(4 + i * 8, true);
    const v = view.getUint32(8 + i * 8, true);
    const name = text.decode(bytes.subarray(at, at + k));
    at += k + 1;
    const value = text.decode(bytes.subarray(at, at + v));
    at += v + 1;
    pairs.push([name, value]);
  }
  return pairs;
}

export class Refusal extends Error {}

// ---------------------------------------------------------------------------
// One plugin VM and the host around it
// ---------------------------------------------------------------------------

export class PluginVm {
  constructor(label, { file, module }, configBytes) {
    this.label = label;
    this.source = file;
    this.module = module;
    this.configBytes = configBytes;
    this.bytesIntoVm = 0;
    this.logs = []; // the last LOG_KEEP lines
    this.logCount = 0;
    this.metrics = new Map(); // name -> {id, value}
    this.metricById = new Map();
    this.shared = new Map(); // key -> {value, cas}
    this.nextCas = 1;
    this.properties = new Map(); // set by the plugin on the root context
    this.tickPeriodMs = 0;
    this.ticks = 0;
    this.nextContext = 2;
    this.stream = null; // the request in flight
    this.effectiveContext = 0;
    this.configuring = false;
    this.outcomes = new Map(); // "forwarded" | "local <status>" | "paused" -> count
    this.firstRefusal = null;
  }

  async instantiate() {
    const wasi = new WASI({ version: "preview1", args: ["edge-auth"], env: {} });
    const imports = { env: {} };
    // Counted in a plain array (one slot per import): cheap next to a call.
    const names = [];
    const counts = (this.callCounts = []);
    this.callNames = names;
    const slot = (name) => {
      names.push(name);
      counts.push(0);
      return names.length - 1;
    };
    // Node's WASI checks how many arguments it gets: pass them on as they came.
    const countedWasi = (name, fn) => {
      const i = slot(name);
      return (...args) => {
        counts[i]++;
        return fn(...args);
      };
    };
    const counted = (name, fn) => {
      const i = slot(name);
      return (a, b, c, d, e, f, g, h, j, k) => {
        counts[i]++;
        return fn(a, b, c, d, e, f, g, h, j, k);
      };
    };
    const wasiImports = wasi.getImportObject();
    for (const [module, table] of Object.entries(wasiImports)) {
      imports[module] = {};
      for (const [name, fn] of Object.entries(table)) {
        imports[module][name] = countedWasi(`${module}.${name}`, fn);
      }
    }
    const host = this.hostCalls();
    this.unimplemented = [];
    for (const { module, name, kind } of WebAssembly.Module.imports(this.module)) {
      if (kind !== "function" || module === "wasi_snapshot_preview1") continue;
      // An import this host does not implement answers "unimplemented"
      // (and is still counted: the report lists it).
      const fn = module === "env" ? host[name] : undefined;
      if (fn === undefined) this.unimplemented.push(`${module}.${name}`);
      (imports[module] ??= {})[name] = counted(name, fn ?? (() => UNIMPLEMENTED));
    }
    this.instance = await WebAssembly.instantiate(this.module, imports);
    this.exports = this.instance.exports;
    this.memory = this.exports.memory;
    this.views();
    // Calls the reactor's `_initialize` (the plugin's first callback).
    wasi.initialize(this.instance);
  }

  // --- memory --------------------------------------------------------------

  /** Current views of the VM's memory (a grow detaches the old buffer). */
  views() {
    if (this.u8 === undefined || this.u8.buffer !== this.memory.buffer) {
      this.u8 = new Uint8Array(this.memory.buffer);
      this.dv = new DataView(this.memory.buffer);
    }
  }

  bytesAt(ptr, size) {
    this.views();
    return this.u8.subarray(ptr >>> 0, (ptr >>> 0) + (size >>> 0));
  }

  textAt(ptr, size) {
    return text.decode(this.bytesAt(ptr, size));
  }

  /** Hands `size` bytes to the VM as Envoy does: memory from
   * `proxy_on_memory_allocate` (none for an empty value), its address and
   * size written to the two out-params. `fill(u8, dv, at)` writes them. */
  giveToVm(size, fill, retPtr, retSize) {
    let at = 0;
    if (size > 0) {
      at = this.exports.proxy_on_memory_allocate(size) >>> 0;
      if (at === 0) return BAD_ARGUMENT;
      this.views();
      fill(this.u8, this.dv, at);
      this.bytesIntoVm += size;
    } else {
      this.views();
    }
    this.dv.setUint32(retPtr >>> 0, at, true);
    this.dv.setUint32(retSize >>> 0, size, true);
    return OK;
  }

  giveBytes(bytes, retPtr, retSize) {
    return this.giveToVm(bytes.length, (u8, _dv, at) => u8.set(bytes, at), retPtr, retSize);
  }

  // --- header maps -----------------------------------------------------------

  /** A header map of the stream the host acts for (none on the root
   * context, as in Envoy). */
  map(mapType) {
    const stream = this.stream;
    if (stream === null || this.effectiveContext !== stream.id) return null;
    if (mapType === MAP_REQUEST) return stream.request;
    if (mapType === MAP_RESPONSE) return stream.response;
    return null;
  }

  // --- the imports -----------------------------------------------------------

  hostCalls() {
    return {
      proxy_log: (level, ptr, size) => {
        this.logCount++;
        this.logs.push(`[${LOG_LEVELS[level] ?? level}] ${this.textAt(ptr, size)}`);
        if (this.logs.length > 2 * LOG_KEEP) this.logs.splice(0, this.logs.length - LOG_KEEP);
        return OK;
      },
      proxy_get_current_time_nanoseconds: (retPtr) => {
        this.views();
        this.dv.setBigUint64(retPtr >>> 0, BigInt(Date.now()) * 1_000_000n, true);
        return OK;
      },
      proxy_set_tick_period_milliseconds: (period) => {
        this.tickPeriodMs = period >>> 0;
        this.nextTick = performance.now() + this.tickPeriodMs;
        return OK;
      },
      proxy_get_buffer_bytes: (type, start, maxSize, retPtr, retSize) => {
        // Only the plugin configuration, and only while configuring (as in
        // proxy-wasm-cpp-host); no request body, no call answer here.
        if (type !== BUFFER_PLUGIN_CONFIGURATION || !this.configuring) return NOT_FOUND;
        const from = Math.min(start >>> 0, this.configBytes.length);
        const bytes = this.configBytes.subarray(from, from + (maxSize >>> 0));
        return this.giveBytes(bytes, retPtr, retSize);
      },
      proxy_get_header_map_pairs: (mapType, retPtr, retSize) => {
        const map = this.map(mapType);
        if (map === null) return NOT_FOUND;
        let size = 4;
        for (const [, name, value] of map) size += 8 + name.length + value.length + 2;
        return this.giveToVm(size, (u8, dv, at) => {
          dv.setUint32(at, map.length, true);
          let sizes = at + 4;
          let data = sizes + map.length * 8;
          for (const [, name, value] of map) {
            dv.setUint32(sizes, name.length, true);
            dv.setUint32(sizes + 4, value.length, true);
            sizes += 8;
            u8.set(name, data);
            data += name.length;
            u8[data++] = 0;
            u8.set(value, data);
            data += value.length;
            u8[data++] = 0;
          }
        }, retPtr, retSize);
      },
      proxy_get_header_map_value: (mapType, keyPtr, keySize, retPtr, retSize) => {
        const map = this.map(mapType);
        if (map === null) return NOT_FOUND;
        const key = this.textAt(keyPtr, keySize).toLowerCase();
        const found = map.find(([name]) => name === key);
        if (found === undefined) return NOT_FOUND;
        return this.giveBytes(found[2], retPtr, retSize);
      },
      proxy_replace_header_map_value: (mapType, keyPtr, keySize, valuePtr, valueSize) => {
        const map = this.map(mapType);
        if (map === null) return NOT_FOUND;
        const entry = header(this.textAt(keyPtr, keySize), this.bytesAt(valuePtr, valueSize).slice());
        // Envoy's setCopy: one header with the name afterwards.
        const first = map.findIndex(([name]) => name === entry[0]);
        if (first < 0) {
          map.push(entry);
        } else {
          map[first] = entry;
          for (let i = map.length - 1; i > first; i--) if (map[i][0] === entry[0]) map.splice(i, 1);
        }
        return OK;
      },
      proxy_add_header_map_value: (mapType, keyPtr, keySize, valuePtr, valueSize) => {
        const map = this.map(mapType);
        if (map === null) return NOT_FOUND;
        map.push(header(this.textAt(keyPtr, keySize), this.bytesAt(valuePtr, valueSize).slice()));
        return OK;
      },
      proxy_remove_header_map_value: (mapType, keyPtr, keySize) => {
        const map = this.map(mapType);
        if (map === null) return NOT_FOUND;
        const key = this.textAt(keyPtr, keySize).toLowerCase();
        for (let i = map.length - 1; i >= 0; i--) if (map[i][0] === key) map.splice(i, 1);
        return OK;
      },
      proxy_get_property: (pathPtr, pathSize, retPtr, retSize) => {
        // Path segments arrive NUL-separated ("xds\0route_name").
        const path = this.textAt(pathPtr, pathSize);
        const value = this.propertiesHere().get(path) ?? this.streamProperty(path) ?? STATIC_PROPERTIES.get(path);
        if (value === undefined) return NOT_FOUND;
        return this.giveBytes(value, retPtr, retSize);
      },
      proxy_set_property: (pathPtr, pathSize, valuePtr, valueSize) => {
        // Filter state: the stream's own (gone with it), or the root's.
        this.propertiesHere().set(this.textAt(pathPtr, pathSize), this.bytesAt(valuePtr, valueSize).slice());
        return OK;
      },
      proxy_get_shared_data: (keyPtr, keySize, retPtr, retSize, casPtr) => {
        const entry = this.shared.get(this.textAt(keyPtr, keySize));
        if (entry === undefined) return NOT_FOUND;
        const status = this.giveBytes(entry.value, retPtr, retSize);
        this.dv.setUint32(casPtr >>> 0, entry.cas, true);
        return status;
      },
      proxy_set_shared_data: (keyPtr, keySize, valuePtr, valueSize, cas) => {
        // Envoy's SharedData::set: a non-zero CAS must match the entry's.
        const key = this.textAt(keyPtr, keySize);
        const entry = this.shared.get(key);
        if (entry !== undefined && cas !== 0 && cas >>> 0 !== entry.cas) return CAS_MISMATCH;
        this.shared.set(key, { value: this.bytesAt(valuePtr, valueSize).slice(), cas: this.takeCas() });
        return OK;
      },
      proxy_continue_stream: () => {
        if (this.stream !== null) this.stream.resumed = true;
        return OK;
      },
      proxy_send_local_response: (status, dPtr, dSize, bPtr, bSize, hPtr, hSize) => {
        if (this.stream === null) return NOT_FOUND;
        this.stream.local = {
          status: status >>> 0,
          details: this.textAt(dPtr, dSize),
          body: this.textAt(bPtr, bSize).slice(0, 300),
          headers: parsePairs(this.bytesAt(hPtr, hSize)),
        };
        return OK;
      },
      proxy_set_effective_context: (context) => {
        const known = context === ROOT_CONTEXT || (this.stream !== null && this.stream.id === context);
        if (!known) return BAD_ARGUMENT;
        this.effectiveContext = context;
        return OK;
      },
      proxy_define_metric: (_type, namePtr, nameSize, retId) => {
        const name = this.textAt(namePtr, nameSize);
        let metric = this.metrics.get(name);
        if (metric === undefined) {
          metric = { id: this.metrics.size + 1, value: 0 };
          this.metrics.set(name, metric);
          this.metricById.set(metric.id, metric);
        }
        this.dv.setUint32(retId >>> 0, metric.id, true);
        return OK;
      },
      proxy_increment_metric: (id, offset) => {
        const metric = this.metricById.get(id >>> 0);
        if (metric === undefined) return NOT_FOUND;
        metric.value += Number(offset);
        return OK;
      },
      // Not here: proxy_http_call (the bench's configurations call no IdP).
    };
  }

  takeCas() {
    const cas = this.nextCas;
    this.nextCas = this.nextCas >= 0xffffffff ? 1 : this.nextCas + 1;
    return cas;
  }

  /** The properties set on the context the host acts for. */
  propertiesHere() {
    const stream = this.stream;
    return stream !== null && this.effectiveContext === stream.id ? stream.properties : this.properties;
  }

  /** A few of Envoy's `request.*` attributes, from the request's headers. */
  streamProperty(path) {
    if (this.stream === null || !path.startsWith("request\0")) return undefined;
    const name = REQUEST_ATTRIBUTES.get(path);
    if (name === undefined) return undefined;
    return this.stream.request.find(([n]) => n === name)?.[2];
  }

  // --- the lifecycle -----------------------------------------------------------

  configure() {
    const e = this.exports;
    e.proxy_on_context_create(ROOT_CONTEXT, 0);
    this.configuring = true;
    this.effectiveContext = ROOT_CONTEXT;
    let accepted;
    try {
      accepted = e.proxy_on_configure(ROOT_CONTEXT, this.configBytes.length);
    } finally {
      this.configuring = false;
    }
    if (accepted !== 1) {
      throw new Refusal(`${this.label}: proxy_on_configure returned ${accepted} (configuration refused)`);
    }
  }

  /** One request, as Envoy runs it; its outcome is counted. */
  request(headers) {
    const e = this.exports;
    const id = this.nextContext++;
    e.proxy_on_context_create(id, ROOT_CONTEXT);
    const stream = { id, request: headers.slice(), response: null, local: null, resumed: false, properties: new Map() };
    this.stream = stream;
    this.effectiveContext = id;
    const action = e.proxy_on_request_headers(id, stream.request.length, 1);
    let outcome;
    if (stream.local !== null) {
      outcome = `local ${stream.local.status}`;
      stream.response = [header(":status", String(stream.local.status)),
        ...stream.local.headers.map(([k, v]) => header(k, v))];
    } else if (action === ACTION_CONTINUE) {
      outcome = "forwarded";
      stream.response = UPSTREAM_RESPONSE.slice();
    } else {
      outcome = "paused"; // Envoy would hold it: never answered here
    }
    if (outcome !== "forwarded" && this.firstRefusal === null) this.firstRefusal = { outcome, local: stream.local };
    this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1);
    if (stream.response !== null && e.proxy_on_response_headers !== undefined) {
      e.proxy_on_response_headers(id, stream.response.length, 1);
    }
    if (e.proxy_on_log !== undefined) e.proxy_on_log(id);
    if (e.proxy_on_done !== undefined) e.proxy_on_done(id);
    e.proxy_on_delete(id);
    this.stream = null;
    this.effectiveContext = ROOT_CONTEXT;
  }

  /** Envoy's tick timer, checked between requests. */
  maybeTick() {
    if (this.tickPeriodMs === 0 || this.exports.proxy_on_tick === undefined) return;
    const now = performance.now();
    if (now < this.nextTick) return;
    this.nextTick = now + this.tickPeriodMs;
    this.ticks++;
    this.exports.proxy_on_tick(ROOT_CONTEXT);
  }

  /** Runs `count` requests going round `requests` from `start`; the
   * wall-clock and the process's CPU time (ns) they took. */
  run(requests, start, count) {
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < count; i++) {
      this.request(requests[(start + i) % requests.length]);
      if ((i & 255) === 255) this.maybeTick();
    }
    const wall = Number(process.hrtime.bigint() - t0);
    const cpu = process.cpuUsage(cpu0);
    return { wall, cpu: (cpu.user + cpu.system) * 1000 };
  }

  refused() {
    let n = 0;
    for (const [outcome, count] of this.outcomes) if (outcome !== "forwarded") n += count;
    return n;
  }

  snapshot() {
    return { calls: new Map(this.callNames.map((name, i) => [name, this.callCounts[i]])), bytesIntoVm: this.bytesIntoVm };
  }
}

export const LOG_KEEP = 40;
const STATIC_PROPERTIES = new Map(
  [
    ["route_name", "bench-route"],
    ["xds\0route_name", "bench-route"],
    ["cluster_name", "bench-upstream"],
    ["xds\0cluster_name", "bench-upstream"],
    ["plugin_name", "edge-auth"],
    ["plugin_root_id", ""],
    ["plugin_vm_id", ""],
  ].map(([k, v]) => [k, utf8.encode(v)]),
);
const REQUEST_ATTRIBUTES = new Map([
  ["request\0path", ":path"],
  ["request\0method", ":method"],
  ["request\0host", ":authority"],
  ["request\0scheme", ":scheme"],
  ["request\0id", "x-request-id"],
  ["request\0useragent", "user-agent"],
]);
const UPSTREAM_RESPONSE = [
  header(":status", "200"),
  header("content-type", "text/plain"),
  header("content-length", "2"),
  header("date", "Wed, 02 Dec 2026 06:00:00 GMT"),
  header("server", "envoy"),
];
