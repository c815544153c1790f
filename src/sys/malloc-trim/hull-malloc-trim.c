/*
 * A Node addon with one function, trim(): V8 drops what it keeps for reuse, then glibc's
 * malloc_trim(0) gives the kernel back the free pages inside malloc's heaps, not only at
 * their tops. Answers whether malloc gave any back.
 *
 * A container's monitor is a Node process that sits idle for as long as its container runs.
 * What its start-up freed (module sources, protobuf set-up, the VM's start) stays: in V8,
 * garbage not yet collected and freed heap pages pooled for reuse; in malloc's arenas, free
 * chunks between live ones, as free() only returns the top of a heap and glibc's tunables
 * change only that top. V8's memory pressure notification (critical: a full collection that
 * also releases the pooled pages) and malloc_trim(0) (whole free pages in the middle, by
 * madvise) give them back; Node has no binding for either.
 *
 * Plain C, so it builds with the other host programs without Node's headers or a C++
 * compiler: Node-API's stable C ABI for the function itself (its few declarations here), and
 * V8's two C++ methods called by their Itanium-ABI names (the object pointer first), declared
 * weak: a Node that does not export them leaves them null, and trim() skips V8's part.
 */
#include <malloc.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
typedef struct napi_callback_info__ *napi_callback_info;
typedef napi_value (*napi_callback)(napi_env env, napi_callback_info info);

int napi_create_function(napi_env env, const char *utf8name, size_t length, napi_callback cb, void *data,
                         napi_value *result);
int napi_set_named_property(napi_env env, napi_value object, const char *utf8name, napi_value value);
int napi_get_boolean(napi_env env, bool value, napi_value *result);

/* v8::Isolate::GetCurrent() and v8::Isolate::MemoryPressureNotification(MemoryPressureLevel). */
extern void *_ZN2v87Isolate10GetCurrentEv(void) __attribute__((weak));
extern void _ZN2v87Isolate26MemoryPressureNotificationENS_19MemoryPressureLevelE(void *isolate, int level)
    __attribute__((weak));
/* v8::MemoryPressureLevel::kCritical */
#define MEMORY_PRESSURE_CRITICAL 2

static napi_value trim(napi_env env, napi_callback_info info) {
  (void)info;
  if (_ZN2v87Isolate10GetCurrentEv && _ZN2v87Isolate26MemoryPressureNotificationENS_19MemoryPressureLevelE) {
    void *isolate = _ZN2v87Isolate10GetCurrentEv();
    if (isolate) _ZN2v87Isolate26MemoryPressureNotificationENS_19MemoryPressureLevelE(isolate, MEMORY_PRESSURE_CRITICAL);
  }
  napi_value released = NULL;
  napi_get_boolean(env, malloc_trim(0) == 1, &released);
  return released;
}

napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  napi_value fn = NULL;
  if (napi_create_function(env, "trim", (size_t)-1, trim, NULL, &fn) != 0) return NULL;
  if (napi_set_named_property(env, exports, "trim", fn) != 0) return NULL;
  return exports;
}
