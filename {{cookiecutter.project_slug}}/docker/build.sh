#!/usr/bin/env bash
# Build the training image locally: no AWS account or credentials needed (make image-build).
# docker/push.sh pushes it afterwards; docker/build_and_push.sh (make image) does both.
#
#   bash docker/build.sh                     # CPU image, tagged <repository>:<tag> from project.toml
#   bash docker/build.sh --gpu               # GPU image, tagged <repository>:<tag>-gpu
#   bash docker/build.sh --dry-run           # print the commands; needs neither docker nor AWS
#
# Options (also accepted by build_and_push.sh):
#   --base IMAGE             build the CPU image on IMAGE instead of python:3.11-slim-bookworm, e.g.
#                            when Docker Hub cannot be reached. Any Debian-based image with python3.11
#                            and its venv module works; one made from Debian's packages alone:
#                              mmdebstrap --variant=minbase --include=ca-certificates,netbase,tzdata,python3,python3-venv \
#                                  bookworm rootfs.tar && docker import --change 'ENV LANG=C.UTF-8' \
#                                  --change 'CMD ["python3"]' rootfs.tar local/python:3.11-bookworm
#   --ca-certificates PATH   extra CA certificates (a PEM file, or a folder of *.crt / *.pem such as
#                            /usr/local/share/ca-certificates) that apt and pip need during the build,
#                            e.g. behind a corporate proxy. Passed as a BuildKit secret: not in the image.
#   --install-ca-certificates  also add them to the image's system store (then the image holds them).
#   --tag NAME               the local name of the image (build.sh only; default from project.toml).
#   -- ARGS...               passed to `docker build` as they are (e.g. -- --network host).
#
# Needs docker with BuildKit: Docker 23+ (with its buildx plugin), or Docker 20.10 (DOCKER_BUILDKIT=1,
# set here). DOCKER=/path/to/docker picks the client. Prints the image's size at the end.
set -euo pipefail

SCRIPT_NAME=build.sh
# shellcheck source=SCRIPTDIR/lib.sh
source "${BASH_SOURCE[0]%/*}/lib.sh"
readonly USAGE="usage: bash docker/build.sh [--gpu] [--base IMAGE] [--ca-certificates PATH] [--install-ca-certificates] [--tag NAME] [--dry-run] [-- DOCKER_BUILD_ARGS...]"

parse_arguments() {
    while [[ $# -gt 0 ]]; do
        build_option "$@"
        if [[ "$OPTION_WORDS" -gt 0 ]]; then
            shift "$OPTION_WORDS"
            continue
        fi
        case "$1" in
            --tag)
                [[ -n "${2:-}" ]] || die "--tag needs a name"
                LOCAL_TAG="$2"
                shift ;;
            --) shift; EXTRA_BUILD_ARGS=("$@"); return ;;
            -h | --help) echo "$USAGE"; exit 0 ;;
            *) die "unknown argument '$1'; $USAGE" ;;
        esac
        shift
    done
}

main() {
    parse_arguments "$@"
    resolve_ca_certificates
    cd_to_repository_root
    local uri
    uri="$(read_image_uri)"
    parse_image_uri "$uri"
    if [[ "$DRY_RUN" == 1 ]]; then
        print_build_plan
    else
        check_or_die "build $LOCAL_TAG" docker_problems
    fi
    build_image
    print_image_size
}

main "$@"
