"""Repository rules that wrap libraries installed by Debian packages (no downloads).

Debian's node-llhttp ships llhttp's generated C sources rather than a library, so they are
symlinked into an external repository and compiled as a cc_library.
"""

_LLHTTP_SOURCES = "/usr/share/llhttp"
_LLHTTP_HEADER = "/usr/share/include/llhttp/llhttp.h"

_LLHTTP_BUILD = """
cc_library(
    name = "llhttp",
    srcs = ["src/api.c", "src/http.c", "src/llhttp.c", "src/llhttp.h"],
    hdrs = ["include/llhttp/llhttp.h"],
    copts = ["-w"],
    strip_include_prefix = "include",
    visibility = ["//visibility:public"],
)
"""

def _llhttp_repository_impl(repository_ctx):
    missing = [
        path
        for path in [_LLHTTP_HEADER] + [_LLHTTP_SOURCES + "/" + name for name in ["api.c", "http.c", "llhttp.c"]]
        if not repository_ctx.path(path).exists
    ]
    if missing:
        fail("llhttp is not installed: missing %s. Install the Debian package node-llhttp " % ", ".join(missing) +
             "(tools/install_deps.sh does this).")
    for name in ["api.c", "http.c", "llhttp.c"]:
        repository_ctx.symlink(_LLHTTP_SOURCES + "/" + name, "src/" + name)
    # The sources include "llhttp.h" from their own directory; users include "llhttp/llhttp.h".
    repository_ctx.symlink(_LLHTTP_HEADER, "src/llhttp.h")
    repository_ctx.symlink(_LLHTTP_HEADER, "include/llhttp/llhttp.h")
    repository_ctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % repository_ctx.name)
    repository_ctx.file("BUILD.bazel", _LLHTTP_BUILD)

llhttp_repository = repository_rule(
    implementation = _llhttp_repository_impl,
    local = True,
    doc = "Compiles Debian's generated llhttp C sources (package node-llhttp).",
)
