# shellcheck shell=bash
# Start a virtual X display for Unity builds that render cameras, when a job asks for it with
# UNITY_USE_XVFB=1 (and DISPLAY is not set yet); exports DISPLAY for the Unity player to use.
#
# Sourced, never executed: the image's BASH_ENV (bash_env.sh) sources it, so bash reads it before running
# SDK v3's sm_train.sh (which replaces the image entrypoint), and entrypoint.sh sources it for SDK v2's
# `train` and `docker run`. It therefore changes no shell options and leaves only DISPLAY behind.
# Settings: UNITY_XVFB_SCREEN (default 1024x768x24), UNITY_XVFB_COMMAND (default Xvfb).
#
# Xvfb -displayfd picks a free display number and writes it once the server accepts clients, so
# nothing races the player's first connection.

if [[ "${UNITY_USE_XVFB:-0}" == 1 && -z "${DISPLAY:-}" ]]; then
    _unity_xvfb_ready="$(mktemp)"
    "${UNITY_XVFB_COMMAND:-Xvfb}" -displayfd 3 -screen 0 "${UNITY_XVFB_SCREEN:-1024x768x24}" -nolisten tcp \
        3>"$_unity_xvfb_ready" >/dev/null 2>&1 &
    _unity_xvfb_pid=$!
    for _unity_xvfb_try in {1..100}; do  # up to 10 s
        if [[ -s "$_unity_xvfb_ready" ]] || ! kill -0 "$_unity_xvfb_pid" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    if [[ -s "$_unity_xvfb_ready" ]]; then
        DISPLAY=":$(<"$_unity_xvfb_ready")"
        export DISPLAY
        rm -f "$_unity_xvfb_ready"
        unset _unity_xvfb_ready _unity_xvfb_pid _unity_xvfb_try
    else
        echo "unity-xvfb: UNITY_USE_XVFB=1 but '${UNITY_XVFB_COMMAND:-Xvfb}' could not start a" \
            "display (it exited, or gave none within 10 s); install the xvfb package, or unset" \
            "UNITY_USE_XVFB for builds run with no_graphics" >&2
        kill "$_unity_xvfb_pid" 2>/dev/null || true
        rm -f "$_unity_xvfb_ready"
        exit 1
    fi
fi
