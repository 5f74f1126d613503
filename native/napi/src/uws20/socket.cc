// The socket behind a uWebSockets.js 20.30 HttpResponse, for `uwsPeerAddress` (mod.rs), the
// accept-time addresses (accept_peers.rs) and the request head (request.rs).
//
// The addon's only C++: reading an object's internal field has no C or N-API form, only V8's
// C++ API. Compiled by build.rs against the headers of the Node that builds the addon, with
// the V8 defines of that Node's build (node's common.gypi), so the inline V8 code here reads
// objects the way that Node lays them out.
//
// What it relies on, besides V8's public API (checked at run time by `PeerReader` in
// src/workers/http/downstream/client-address.ts against uWS's own getRemoteAddress before it is trusted):
// - a uWS.js HttpResponse object has exactly one internal field, holding the
//   uWS::HttpResponse*, which is the connection's us_socket_t* (uWS.js AppWrapper.h; null
//   once the response was aborted);
// - with uSockets' libuv backend, which uWS.js uses on every platform, a us_socket_t starts
//   with its us_poll_t { uv_poll_t *uv_p; int fd; ... }: the descriptor is at byte 8
//   (mod.rs, socket_fd). uWS's own res_getRemoteAddress reads it there
//   (`mov 0x8(%rax),%edi` before its getpeername);
// - a uWS.js listen token is a v8::External of the us_listen_socket_t*, which starts with
//   its us_socket_t (accept_peers.rs checks that the descriptor there is listening).
//
// Must never: be handed anything but a uWS HttpResponse from uWS's handler or its
// callbacks (an object with one internal field that is not one would be read as one).

#include <string.h>

#include <node_api.h>
#include <v8.h>

// The uSockets socket (us_socket_t*) behind `value`, or null when it is not an object with
// one internal field or the field is null (an aborted response).
extern "C" const void* sluice_uws_socket(napi_value value) {
  // Node's N-API hands JS values to callbacks as v8::Local<v8::Value> handles, bit for bit
  // (js_native_api_v8.h, V8LocalValueFromJsValue).
  v8::Local<v8::Value> v;
  static_assert(sizeof(v) == sizeof(value), "napi_value and v8::Local<v8::Value> differ in size");
  memcpy(static_cast<void*>(&v), &value, sizeof(value));
  if (v.IsEmpty() || !v->IsObject()) return nullptr;
  v8::Local<v8::Object> o = v.As<v8::Object>();
  if (o->InternalFieldCount() != 1) return nullptr;
  return o->GetAlignedPointerFromInternalField(0);
}

// The us_listen_socket_t* of a uWS.js listen token (the v8::External uWS hands to `listen`'s
// callback), or null for anything else. Read with V8's API: Node-API's
// napi_get_value_external crashed on it with Node 20.20, which reads the External's pointer as
// the wrapper its own napi_create_external makes.
extern "C" void* sluice_uws_listen_socket(napi_value value) {
  v8::Local<v8::Value> v;
  memcpy(static_cast<void*>(&v), &value, sizeof(value));
  if (v.IsEmpty() || !v->IsExternal()) return nullptr;
  return v.As<v8::External>()->Value();
}
