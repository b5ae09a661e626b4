//! The proxy-wasm ABI calls the plugin makes, with no panic on any answer
//! (wasm build only).
//!
//! The SDK's `hostcalls` wrappers panic on every status they do not expect
//! (a header map that is gone, a refused write) and on a header value that
//! is not UTF-8: one request with `Content-Type: \xff` aborted the VM and
//! left the gateway answering 503 to everyone until Envoy restarted it.
//! Here every call returns the ABI status as an error, and bytes stay
//! bytes. Signatures as in proxy-wasm-rust-sdk 0.2.5 `src/hostcalls.rs` (ABI
//! 0.2.1); statuses are read as `u32`, never as the SDK's enum (an unknown
//! value in an enum is undefined behaviour).
//!
//! The SDK itself is gone (see `plugin/`): its dispatcher exported every
//! callback of the ABI, and Envoy enters the VM for each one a module
//! exports. The few ABI types the plugin uses are declared here.

use std::mem::MaybeUninit;
use std::ptr::null_mut;

use super::pairs::{serialize_pairs, HeaderBlock};

/// The ABI's `Ok`.
const OK: u32 = 0;
/// The ABI's `NotFound`.
const NOT_FOUND: u32 = 1;

/// The ABI's log levels (proxy-wasm 0.2.1 `LogLevel`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

/// The header maps the plugin reads or writes (ABI `MapType`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderMap {
    Request = 0,
    Response = 2,
    CallResponse = 6,
}

/// The buffers the plugin reads (ABI `BufferType`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferType {
    HttpRequestBody = 0,
    HttpCallResponseBody = 4,
    PluginConfiguration = 7,
}

/// ABI `MetricType::Counter`.
const METRIC_COUNTER: u32 = 0;
/// ABI `StreamType::HttpRequest`.
const STREAM_HTTP_REQUEST: u32 = 0;

/// A status other than `Ok` (and other than `NotFound` where absence is an
/// answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u32);

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: LogLevel, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: BufferType,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: HeaderMap,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_value(
        map_type: HeaderMap,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: HeaderMap,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(
        map_type: HeaderMap,
        key_data: *const u8,
        key_size: usize,
    ) -> u32;
    fn proxy_add_header_map_value(
        map_type: HeaderMap,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_http_call(
        upstream_data: *const u8,
        upstream_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        body_data: *const u8,
        body_size: usize,
        trailers_data: *const u8,
        trailers_size: usize,
        timeout_milliseconds: u32,
        return_token: *mut u32,
    ) -> u32;
}

/// Memory for the host to write into (header maps, buffers, property
/// values): exactly `size` bytes, which [`host_bytes`] takes back as a
/// `Vec<u8>` of that capacity. Exported as `proxy_on_memory_allocate` by
/// the shell.
pub fn allocate(size: usize) -> *mut u8 {
    let buffer: Box<[MaybeUninit<u8>]> = Box::new_uninit_slice(size);
    Box::into_raw(buffer).cast::<u8>()
}

fn checked(status: u32) -> Result<(), Status> {
    if status == OK {
        Ok(())
    } else {
        Err(Status(status))
    }
}

/// Takes ownership of bytes the host wrote into memory it allocated through
/// [`allocate`] (a boxed slice of exactly `size`).
///
/// # Safety
/// `data` is null or was returned by the host for this call with `size`.
unsafe fn host_bytes(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        Vec::from_raw_parts(data, size, size)
    }
}

/// A call that answers with bytes: `Ok(None)` for `NotFound`.
fn read_bytes(
    call: impl FnOnce(*mut *mut u8, *mut usize) -> u32,
) -> Result<Option<Vec<u8>>, Status> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    let status = call(&mut data, &mut size);
    match status {
        // SAFETY: on Ok the host handed over `data` of `size` bytes.
        OK => Ok(Some(unsafe { host_bytes(data, size) })),
        NOT_FOUND => Ok(None),
        other => Err(Status(other)),
    }
}

pub fn log(level: LogLevel, message: &str) {
    // SAFETY: the slice outlives the call; the host copies it.
    let _ = unsafe { proxy_log(level, message.as_ptr(), message.len()) };
}

pub fn current_time_nanos() -> Option<u64> {
    let mut nanos = 0u64;
    // SAFETY: the host writes one u64 into `nanos`.
    checked(unsafe { proxy_get_current_time_nanoseconds(&mut nanos) }).ok()?;
    Some(nanos)
}

pub fn set_tick_period_ms(period_ms: u64) -> Result<(), Status> {
    let period = u32::try_from(period_ms).unwrap_or(u32::MAX);
    // SAFETY: no memory is shared.
    checked(unsafe { proxy_set_tick_period_milliseconds(period) })
}

pub fn buffer(
    buffer_type: BufferType,
    start: usize,
    max_size: usize,
) -> Result<Option<Vec<u8>>, Status> {
    // SAFETY: the host writes a pointer and a size into the two out-params.
    read_bytes(|data, size| unsafe {
        proxy_get_buffer_bytes(buffer_type, start, max_size, data, size)
    })
}

/// Every header of a map, in order, names and values as bytes.
pub fn header_pairs(map_type: HeaderMap) -> Result<HeaderBlock, Status> {
    // SAFETY: the host writes a pointer and a size into the two out-params.
    let bytes =
        read_bytes(|data, size| unsafe { proxy_get_header_map_pairs(map_type, data, size) })?;
    Ok(bytes.map(HeaderBlock::parse).unwrap_or_default())
}

/// The first value of a header (Envoy's answer for a repeated one).
pub fn header_value(map_type: HeaderMap, name: &str) -> Result<Option<Vec<u8>>, Status> {
    // SAFETY: `name` outlives the call; the host writes the out-params.
    read_bytes(|data, size| unsafe {
        proxy_get_header_map_value(map_type, name.as_ptr(), name.len(), data, size)
    })
}

pub fn replace_header(map_type: HeaderMap, name: &str, value: &[u8]) -> Result<(), Status> {
    // SAFETY: both slices outlive the call; the host copies them.
    checked(unsafe {
        proxy_replace_header_map_value(
            map_type,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

pub fn remove_header(map_type: HeaderMap, name: &str) -> Result<(), Status> {
    // SAFETY: the slice outlives the call.
    checked(unsafe { proxy_remove_header_map_value(map_type, name.as_ptr(), name.len()) })
}

pub fn add_header(map_type: HeaderMap, name: &str, value: &str) -> Result<(), Status> {
    // SAFETY: both slices outlive the call; the host copies them.
    checked(unsafe {
        proxy_add_header_map_value(
            map_type,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// A property by its path segments (joined with NUL, as the ABI wants).
pub fn property(path: &[&str]) -> Result<Option<Vec<u8>>, Status> {
    let joined = path.join("\0");
    // SAFETY: `joined` outlives the call; the host writes the out-params.
    read_bytes(|data, size| unsafe {
        proxy_get_property(joined.as_ptr(), joined.len(), data, size)
    })
}

/// Sets a one-segment property (a filter-state value: Envoy prefixes `wasm.`).
pub fn set_property(name: &str, value: &str) -> Result<(), Status> {
    // SAFETY: both slices outlive the call; the host copies them.
    checked(unsafe { proxy_set_property(name.as_ptr(), name.len(), value.as_ptr(), value.len()) })
}

/// A shared-data value and its CAS version; `(None, None)` when absent.
pub fn shared_data(key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), Status> {
    let mut cas = 0u32;
    // SAFETY: `key` outlives the call; the host writes the out-params.
    let value = read_bytes(|data, size| unsafe {
        proxy_get_shared_data(key.as_ptr(), key.len(), data, size, &mut cas)
    })?;
    Ok(match value {
        Some(value) => (Some(value), (cas > 0).then_some(cas)),
        None => (None, None),
    })
}

pub fn set_shared_data(key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Status> {
    // SAFETY: both slices outlive the call; the host copies them.
    checked(unsafe {
        proxy_set_shared_data(
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
            cas.unwrap_or(0),
        )
    })
}

pub fn resume_request() -> Result<(), Status> {
    // SAFETY: no memory is shared.
    checked(unsafe { proxy_continue_stream(STREAM_HTTP_REQUEST) })
}

pub fn send_local_response(
    status: u32,
    details: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(), Status> {
    let headers = serialize_pairs(headers);
    // SAFETY: every slice outlives the call; the host copies them.
    checked(unsafe {
        proxy_send_local_response(
            status,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1, // no gRPC status
        )
    })
}

pub fn set_effective_context(context: u32) -> Result<(), Status> {
    // SAFETY: no memory is shared.
    checked(unsafe { proxy_set_effective_context(context) })
}

pub fn define_counter(name: &str) -> Result<u32, Status> {
    let mut id = 0u32;
    // SAFETY: `name` outlives the call; the host writes the id.
    checked(unsafe { proxy_define_metric(METRIC_COUNTER, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn increment_counter(id: u32) -> Result<(), Status> {
    // SAFETY: no memory is shared.
    checked(unsafe { proxy_increment_metric(id, 1) })
}

/// Dispatches an HTTP call to `cluster`; its token, which Envoy's answer
/// (`proxy_on_http_call_response`, always on the root context) carries.
pub fn http_call(
    cluster: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout_ms: u64,
) -> Result<u32, Status> {
    let headers = serialize_pairs(headers);
    let no_trailers = serialize_pairs(&[]);
    let timeout = u32::try_from(timeout_ms).unwrap_or(u32::MAX);
    let mut token = 0u32;
    // SAFETY: every slice outlives the call; the host copies them and
    // writes the token.
    checked(unsafe {
        proxy_http_call(
            cluster.as_ptr(),
            cluster.len(),
            headers.as_ptr(),
            headers.len(),
            body.as_ptr(),
            body.len(),
            no_trailers.as_ptr(),
            no_trailers.len(),
            timeout,
            &mut token,
        )
    })?;
    Ok(token)
}
