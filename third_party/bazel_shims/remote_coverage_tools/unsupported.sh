#!/bin/sh
echo "bazel coverage is not supported offline by this project (remote_coverage_tools shim)" >&2
exit 1
