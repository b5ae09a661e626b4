//! A proxy-wasm HTTP filter that continues every request and makes no host
//! call, exporting only what Envoy needs to run it: the ABI version marker,
//! the memory allocator the host writes into, context creation and the two
//! header callbacks. Envoy (proxy-wasm-cpp-host) treats every callback a
//! module does not export as "continue", so it never enters this VM for
//! bodies, trailers, the log phase or a context's end.

/// The ABI this module speaks (proxy-wasm 0.2.1).
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// Memory the host fills (header maps, buffers); this filter reads none,
/// but the host may still ask.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut buffer: Vec<u8> = Vec::with_capacity(size);
    let ptr = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    ptr
}

/// Root and stream contexts alike: nothing to keep.
#[no_mangle]
pub extern "C" fn proxy_on_context_create(_context_id: u32, _parent_context_id: u32) {}

/// 0: continue.
#[no_mangle]
pub extern "C" fn proxy_on_request_headers(_context_id: u32, _headers: usize, _end_of_stream: u32) -> u32 {
    0
}

/// 0: continue.
#[no_mangle]
pub extern "C" fn proxy_on_response_headers(_context_id: u32, _headers: usize, _end_of_stream: u32) -> u32 {
    0
}
