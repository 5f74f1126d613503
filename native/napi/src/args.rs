//! Reading arguments and throwing errors on raw N-API, for the functions bound by hand.

use std::ffi::c_void;
use std::ptr;

use napi::sys;

/// Data pointer and element count of a typed array of the given kind, or None. An empty
/// array gives a dangling (never read) but non-null pointer.
pub unsafe fn typed_array<T>(env: sys::napi_env, v: sys::napi_value, kind: sys::napi_typedarray_type) -> Option<(*mut T, usize)> {
    let mut t: sys::napi_typedarray_type = -1;
    let mut len: usize = 0;
    let mut data: *mut c_void = ptr::null_mut();
    let status = sys::napi_get_typedarray_info(env, v, &mut t, &mut len, &mut data, ptr::null_mut(), ptr::null_mut());
    if status != sys::Status::napi_ok || t != kind {
        return None;
    }
    let data = if data.is_null() { ptr::NonNull::<T>::dangling().as_ptr() } else { data as *mut T };
    Some((data, len))
}

/// A number argument as u32 with JS's ToUint32 (so -1 is 4294967295, as in the JS twin).
pub unsafe fn uint32(env: sys::napi_env, v: sys::napi_value) -> Option<u32> {
    let mut n: u32 = 0;
    (sys::napi_get_value_uint32(env, v, &mut n) == sys::Status::napi_ok).then_some(n)
}

pub unsafe fn is_nullish(env: sys::napi_env, v: sys::napi_value) -> bool {
    let mut t: sys::napi_valuetype = 0;
    sys::napi_typeof(env, v, &mut t) != sys::Status::napi_ok || t == sys::ValueType::napi_undefined || t == sys::ValueType::napi_null
}

pub unsafe fn throw_range_error(env: sys::napi_env, msg: &std::ffi::CStr) -> sys::napi_value {
    sys::napi_throw_range_error(env, ptr::null(), msg.as_ptr());
    ptr::null_mut()
}

pub unsafe fn throw_type_error(env: sys::napi_env, msg: &std::ffi::CStr) -> sys::napi_value {
    sys::napi_throw_type_error(env, ptr::null(), msg.as_ptr());
    ptr::null_mut()
}

pub fn concat_msg(name: &std::ffi::CStr, rest: &str) -> std::ffi::CString {
    std::ffi::CString::new(format!("{}{rest}", name.to_string_lossy())).unwrap_or_default()
}
