# shellcheck shell=bash
# The image's BASH_ENV: bash reads it before running any non-interactive command or script.
#
# 1. SDK v3's ModelTrainer replaces the image's entrypoint with `/bin/bash -c "... sm_train.sh"`, so
#    that bash is the container's PID 1, and PID 1 without a handler never gets SageMaker's SIGTERM
#    (see init.py). When bash is PID 1 and runs a -c command, it re-runs that command under
#    /opt/unity-rl/init, which passes the signal on to the trainer.
# 2. Then xvfb.sh: a virtual display when the job sets UNITY_USE_XVFB=1.

if [[ $$ == 1 && -n "${BASH_EXECUTION_STRING:-}" && -x /opt/unity-rl/init ]]; then
    exec /opt/unity-rl/init /bin/bash -c "$BASH_EXECUTION_STRING"
fi

# shellcheck source=SCRIPTDIR/xvfb.sh
source /opt/unity-rl/xvfb.sh
