#!/usr/bin/env bash
# The image's entrypoint (run by init, PID 1): start Xvfb when the job sets UNITY_USE_XVFB=1 (see
# xvfb.sh), then become the job's command. SageMaker SDK v2 runs `<image> train`; `docker run <image>
# <command>` works the same. init passes SIGTERM from a stopped or interrupted spot job on to the
# trainer (which checkpoints), see init.py.
set -euo pipefail

# shellcheck source=SCRIPTDIR/xvfb.sh
source "$(dirname "${BASH_SOURCE[0]}")/xvfb.sh"

if [[ $# -eq 0 ]]; then
    echo "entrypoint.sh: no command given; SageMaker passes 'train', locally try 'python3'" >&2
    exit 2
fi
exec "$@"
