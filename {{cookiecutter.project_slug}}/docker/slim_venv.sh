#!/bin/sh
# Drop from the image's venv what no training job loads, in the same build step that installed it
# (files deleted in a later layer would still be pulled with every job). Measured on the CPU image,
# December 2026 (venv 1.52 GB before): each line says what it saved. The build's smoke test and
# tests/image/ (real jobs in the image) run after it.
#
#   sh docker/slim_venv.sh /opt/venv
set -eu
venv="${1:?usage: slim_venv.sh VENV}"
site="$(echo "$venv"/lib/python3*/site-packages)"

# ~205 MB: TensorFlow's shared libraries ship with their full symbol tables (.symtab; 752 MB ->
# 556 MB for libtensorflow_cc.so.2). Loading needs only the dynamic symbols, which stay; a native
# crash's backtrace shows addresses instead of names. Other packages' libraries are stripped already.
find "$site/tensorflow" -name '*.so*' -type f -exec strip --strip-unneeded {} +
# ~61 MB: libclang (a declared dependency of TensorFlow that its Python code never imports; used by
# its build tooling). The package stays installed (pip check passes); only `clang.cindex` would fail.
rm -f "$site"/clang/native/libclang.so
# Headers for compiling custom ops against this TensorFlow.
rm -rf "$site/tensorflow/include"
# Test suites shipped inside packages (numpy, scipy, matplotlib, ...); `numpy.testing` and the
# like are modules, not folders named tests, and stay.
find "$site" -depth -type d -name tests -prune -exec rm -rf {} +
# Not done: no *.pyc are written at all (PYTHONDONTWRITEBYTECODE=1 also keeps pip from compiling);
# TensorFlow's own Python and the other packages stay complete.
