# shellcheck shell=sh
# Extra CA certificates for the build's downloads (apt, pip), when the build was given them as the
# BuildKit secret `ca-certificates` (docker/build.sh --ca-certificates FILE). Sourced by the
# Dockerfile's RUN steps, with /bin/sh; each step ends with build_ca_cleanup, so neither the
# certificates nor the bundle made from them stay in a layer.
#
# The bundle is the system's trusted certificates plus the extra ones: pip (PIP_CERT), Python's ssl
# (SSL_CERT_FILE), requests (REQUESTS_CA_BUNDLE) and apt over https (Acquire::https::CAInfo) all
# use it. Without the secret this does nothing.

BUILD_CA_BUNDLE=/tmp/build-ca-bundle.pem
BUILD_CA_APT_CONF=/etc/apt/apt.conf.d/99build-ca-certificates

if [ -s /run/secrets/ca-certificates ]; then
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        cat /etc/ssl/certs/ca-certificates.crt /run/secrets/ca-certificates > "$BUILD_CA_BUNDLE"
    else
        cat /run/secrets/ca-certificates > "$BUILD_CA_BUNDLE"
    fi
    export PIP_CERT="$BUILD_CA_BUNDLE" SSL_CERT_FILE="$BUILD_CA_BUNDLE" REQUESTS_CA_BUNDLE="$BUILD_CA_BUNDLE"
    if [ -d /etc/apt/apt.conf.d ]; then
        printf 'Acquire::https::CAInfo "%s";\n' "$BUILD_CA_BUNDLE" > "$BUILD_CA_APT_CONF"
    fi
fi

build_ca_cleanup() {
    rm -f "$BUILD_CA_BUNDLE" "$BUILD_CA_APT_CONF"
}
