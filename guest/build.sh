#!/bin/sh
# Build the test guest (kernel + initramfs) into ${1:-guest/out}; see build.py.
exec python3 "$(dirname "$0")/build.py" "$@"
