// The socket behind a uWebSockets.js 20.30 HttpResponse, for `uwsPeerAddress` (lib.rs).
//
// The addon's only C++: reading an object's internal field has no C or N-API form, only V8's
// C++ API. Compiled by build.rs against the headers of the Node that builds the addon, with
// the V8 defines of that Node's build (node's common.gypi), so the inline V8 code here reads
// objects the way that Node lays them out.
//
// What it relies on, besides V8's public API (checked at run time by `PeerReader` in
// src/workers/client-address.ts against uWS's own getRemoteAddress before it is trusted):
// - a uWS.js HttpResponse object has exactly one internal field, holding the
//   uWS::HttpResponse*, which is the connection's us_socket_t* (uWS.js AppWrapper.h; null
//   once the response was aborted);
// - with uSockets' libuv backend, which uWS.js uses on every platform, a us_socket_t starts
//   with its us_poll_t { uv_poll_t *uv_p; int fd; ... }: the descriptor is at byte 8. uWS's
//   own res_getRemoteAddress reads it there (`mov 0x8(%rax),%edi` before its getpeername).
//
// Must never: be handed anything but a uWS HttpResponse from uWS's handler or its
// callbacks (an object with one internal field that is not one would be read as one).

#include <string.h>

#include <node_api.h>
#include <v8.h>

namespace {
constexpr size_t kUsPollFdOffset = 8;
}

// The descriptor of the connection behind `value`, or -1 when it is not an object with one
// internal field or the field is null (an aborted response).
extern "C" int sluice_uws_socket_fd(napi_value value) {
  // Node's N-API hands JS values to callbacks as v8::Local<v8::Value> handles, bit for bit
  // (js_native_api_v8.h, V8LocalValueFromJsValue).
  v8::Local<v8::Value> v;
  static_assert(sizeof(v) == sizeof(value), "napi_value and v8::Local<v8::Value> differ in size");
  memcpy(static_cast<void*>(&v), &value, sizeof(value));
  if (v.IsEmpty() || !v->IsObject()) return -1;
  v8::Local<v8::Object> o = v.As<v8::Object>();
  if (o->InternalFieldCount() != 1) return -1;
  const char* socket = static_cast<const char*>(o->GetAlignedPointerFromInternalField(0));
  if (socket == nullptr) return -1;
  int fd;
  memcpy(&fd, socket + kUsPollFdOffset, sizeof(fd));
  return fd;
}
