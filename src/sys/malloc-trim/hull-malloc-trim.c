/*
 * A Node addon with one function, trim(): glibc's malloc_trim(0), which gives the kernel back
 * the free pages inside malloc's heaps, not only at their tops.
 *
 * A container's monitor is a Node process that sits idle for as long as its container runs.
 * What its start-up freed (module sources, protobuf set-up, the VM's start) stays in malloc's
 * arenas as free chunks between live ones: free() only returns the top of a heap, and glibc's
 * tunables change only that top. malloc_trim(0) also releases whole free pages in the middle
 * (madvise DONTNEED); Node has no binding for it.
 *
 * Written against Node-API's C ABI (stable across Node versions) with its few declarations
 * here, so the build needs no Node headers; the symbols resolve in the node binary at load.
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

/* Whether any memory went back to the kernel. */
static napi_value trim(napi_env env, napi_callback_info info) {
  (void)info;
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
