# shellcheck shell=bash
# Shared by docker/build.sh (build, no AWS), docker/push.sh (push to ECR) and docker/build_and_push.sh
# (both, `make image`). Sourced, never run; the scripts set SCRIPT_NAME first.
#
# Settings from the environment: DOCKER (the docker program, default `docker`: it must have BuildKit,
# Docker 23+ or 20.10 with DOCKER_BUILDKIT=1, which the scripts set), PYTHON (to read project.toml).

# <account>.dkr.ecr.<region>.amazonaws.com[.cn]/<repository>[:<tag>] (the template validated it).
readonly ECR_URI_PATTERN='^(([0-9]{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?)/([a-z0-9][a-z0-9._/-]*)(:([A-Za-z0-9_][A-Za-z0-9_.-]*))?$'

DRY_RUN=0
VARIANT=cpu
BASE_IMAGE=""           # --base: the CPU stage's PYTHON_IMAGE build arg
CA_CERTIFICATES=""      # --ca-certificates: a PEM file (or a folder of them) for the build's downloads
INSTALL_CA_CERTIFICATES=0
LOCAL_TAG=""            # --tag: the local name of the built image (default <repository>:<tag>)
EXTRA_BUILD_ARGS=()     # after --: passed to docker build as they are
DOCKER="${DOCKER:-docker}"
export DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-1}"

die() {
    printf '%s: %s\n' "$SCRIPT_NAME" "$1" >&2
    exit 1
}

# Every path below is relative to the repository root, wherever the script is called from.
cd_to_repository_root() {
    local script="${BASH_SOURCE[0]}" folder=.
    [[ "$script" == */* ]] && folder="${script%/*}"
    cd "$folder/.." || exit 1
}

# Options of the build step (build.sh and build_and_push.sh): $1 is the option, $2 its value.
# Sets OPTION_WORDS to how many words it used (0 when $1 is not a build option).
# shellcheck disable=SC2034  # OPTION_WORDS is read by the scripts that source this file
build_option() {
    OPTION_WORDS=1
    case "$1" in
        --gpu) VARIANT=gpu ;;
        --dry-run) DRY_RUN=1 ;;
        --base)
            [[ -n "${2:-}" ]] || die "--base needs an image name"
            BASE_IMAGE="$2"
            OPTION_WORDS=2 ;;
        --ca-certificates)
            [[ -n "${2:-}" ]] || die "--ca-certificates needs a PEM file or a folder of them"
            CA_CERTIFICATES="$2"
            OPTION_WORDS=2 ;;
        --install-ca-certificates) INSTALL_CA_CERTIFICATES=1 ;;
        *) OPTION_WORDS=0 ;;
    esac
}

# project.toml is TOML: read it with Python's tomllib (3.11+) rather than guess with sed.
find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.11 python3 python; do
        if [[ -n "$candidate" ]] && command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import tomllib' >/dev/null 2>&1; then
            echo "$candidate"
            return
        fi
    done
    die "no Python 3.11+ found to read project.toml (tried \$PYTHON, python3.11, python3, python); install Python 3.11 or set PYTHON=/path/to/python3.11"
}

read_image_uri() {
    [[ -f project.toml ]] || die "no project.toml in $PWD: run this script inside a repository made by the unity-sagemaker-rl template"
    local python
    python="$(find_python)"
    "$python" -c '
import sys, tomllib
try:
    with open("project.toml", "rb") as file:
        uri = tomllib.load(file).get("aws", {}).get("ecr_image_uri", "")
except tomllib.TOMLDecodeError as error:
    sys.exit(f"'"$SCRIPT_NAME"': project.toml is not valid TOML ({error}): fix it, then run again")
if not uri:
    sys.exit("'"$SCRIPT_NAME"': project.toml has no [aws] ecr_image_uri: add your ECR image URI there")
print(uri)
'
}

# Splits the URI into REGISTRY ACCOUNT REGION REPOSITORY TAG IMAGE (globals used by the steps below).
parse_image_uri() {
    local uri="$1"
    [[ "$uri" != *@sha256:* ]] || die "ecr_image_uri '$uri' names an image by digest, which cannot be pushed to; put a tag there instead (e.g. ':latest') in project.toml"
    [[ "$uri" =~ $ECR_URI_PATTERN ]] || die "ecr_image_uri '$uri' is not an ECR image URI (<12-digit account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag]); fix [aws] ecr_image_uri in project.toml"
    REGISTRY="${BASH_REMATCH[1]}"
    ACCOUNT="${BASH_REMATCH[2]}"
    REGION="${BASH_REMATCH[3]}"
    REPOSITORY="${BASH_REMATCH[5]}"
    TAG="${BASH_REMATCH[7]:-latest}"
    if [[ "$VARIANT" == gpu ]]; then
        TAG="$TAG-gpu"
    fi
    IMAGE="$REGISTRY/$REPOSITORY:$TAG"
    [[ -n "$LOCAL_TAG" ]] || LOCAL_TAG="$REPOSITORY:$TAG"
}

docker_problems() {
    if ! command -v "$DOCKER" >/dev/null 2>&1; then
        echo "  - docker is not installed (or not on PATH): install Docker, https://docs.docker.com/get-docker/"
    elif ! "$DOCKER" info >/dev/null 2>&1; then
        echo "  - the Docker daemon is not reachable ('docker info' failed): start Docker Desktop or the docker service, and check that your user may use it"
    fi
}

aws_problems() {
    local caller_account
    if ! command -v aws >/dev/null 2>&1; then
        echo "  - the AWS CLI is not installed: install it, https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"
    elif ! caller_account="$(aws sts get-caller-identity --region "$REGION" --query Account --output text 2>/dev/null)"; then
        echo "  - no usable AWS credentials ('aws sts get-caller-identity' failed): run 'aws configure' or 'aws sso login', or set AWS_PROFILE"
    elif [[ "$caller_account" != "$ACCOUNT" ]]; then
        echo "  - your AWS credentials are for account $caller_account but ecr_image_uri names account $ACCOUNT: put your account in [aws] ecr_image_uri in project.toml (123456789012 is the template's placeholder), or use credentials for $ACCOUNT"
    fi
}

# Without --dry-run, check everything before starting, and name every missing piece at once.
# $1: what the script is about to do; then the names of the checks (docker_problems, aws_problems).
check_or_die() {
    local doing="$1" problems="" check
    shift
    for check in "$@"; do
        problems+="$("$check")"
        [[ -z "$problems" || "$problems" == *$'\n' ]] || problems+=$'\n'
    done
    if [[ -n "$problems" ]]; then
        printf '%s: cannot %s:\n%s' "$SCRIPT_NAME" "$doing" "$problems" >&2
        printf 'Run with --dry-run to see the commands without running them.\n' >&2
        exit 1
    fi
}

print_command() {
    local line
    printf -v line '%q ' "$@"
    printf '%s\n' "${line% }"
}

# Dry run: print the command. Otherwise: echo it to stderr (like set -x, but readable) and run it.
run() {
    if [[ "$DRY_RUN" == 1 ]]; then
        print_command "$@"
    else
        printf '+ %s\n' "$(print_command "$@")" >&2
        "$@"
    fi
}

# A folder of certificates (like /usr/local/share/ca-certificates) becomes one PEM file; a file is
# checked. Sets CA_FILE (absolute). The file goes to the build as a secret, never into a layer.
resolve_ca_certificates() {
    [[ -n "$CA_CERTIFICATES" ]] || return 0
    local found=()
    if [[ -d "$CA_CERTIFICATES" ]]; then
        shopt -s nullglob
        found=("$CA_CERTIFICATES"/*.crt "$CA_CERTIFICATES"/*.pem)
        shopt -u nullglob
        [[ ${#found[@]} -gt 0 ]] || die "--ca-certificates $CA_CERTIFICATES: no *.crt or *.pem file in that folder"
        CA_FILE="$(mktemp "${TMPDIR:-/tmp}/build-ca-certificates.XXXXXX")"
        # shellcheck disable=SC2064  # expand now: the trap must remove this very file
        trap "rm -f '$CA_FILE'" EXIT
        cat "${found[@]}" > "$CA_FILE"
    elif [[ -f "$CA_CERTIFICATES" ]]; then
        case "$CA_CERTIFICATES" in
            /*) CA_FILE="$CA_CERTIFICATES" ;;
            *) CA_FILE="$PWD/$CA_CERTIFICATES" ;;
        esac
    else
        die "--ca-certificates $CA_CERTIFICATES: no such file or folder"
    fi
    grep -q -- '-----BEGIN CERTIFICATE-----' "$CA_FILE" \
        || die "--ca-certificates $CA_CERTIFICATES: no PEM certificate in it (-----BEGIN CERTIFICATE-----)"
}

print_build_plan() {
    echo "# Build the $VARIANT training image (run from the repository root; no AWS needed)"
    echo "#   local tag:  $LOCAL_TAG"
    [[ -z "$BASE_IMAGE" ]] || echo "#   base:       $BASE_IMAGE"
    [[ -z "$CA_CERTIFICATES" ]] || echo "#   extra CA certificates for the build: $CA_CERTIFICATES$([[ "$INSTALL_CA_CERTIFICATES" == 1 ]] && echo ' (also installed in the image)')"
}

# linux/amd64 always: SageMaker instances and Unity Linux players are x86_64 (on an Apple-silicon Mac
# docker emulates it, which is slower but gives the image the jobs need). No --pull: the base may be
# a local image (--base), and a pulled tag is refreshed with `docker pull` when wanted.
build_image() {
    local command=("$DOCKER" build --platform linux/amd64 --file docker/Dockerfile --build-arg "VARIANT=$VARIANT")
    [[ -z "$BASE_IMAGE" ]] || command+=(--build-arg "PYTHON_IMAGE=$BASE_IMAGE")
    if [[ -n "$CA_CERTIFICATES" ]]; then
        command+=(--secret "id=ca-certificates,src=${CA_FILE:-$CA_CERTIFICATES}")
    fi
    [[ "$INSTALL_CA_CERTIFICATES" == 0 ]] || command+=(--build-arg INSTALL_CA_CERTIFICATES=1)
    command+=(--tag "$LOCAL_TAG" "${EXTRA_BUILD_ARGS[@]}" .)
    BUILD_STARTED="$SECONDS"
    run "${command[@]}"
}

# The size of what every job pulls (uncompressed), and how long the build took.
print_image_size() {
    local inspect=("$DOCKER" image inspect --format '{{.Size}}' "$LOCAL_TAG") bytes
    if [[ "$DRY_RUN" == 1 ]]; then
        print_command "${inspect[@]}"
        return
    fi
    bytes="$("${inspect[@]}")" || die "the build finished but '$LOCAL_TAG' cannot be inspected"
    printf '# built %s (%s): %s MB uncompressed, in %s s\n' "$LOCAL_TAG" "$VARIANT" \
        "$(( bytes / 1000000 ))" "$(( SECONDS - BUILD_STARTED ))"
}

print_push_plan() {
    echo "# Push the $VARIANT training image to ECR (run from the repository root)"
    echo "#   image:      $IMAGE"
    echo "#   account:    $ACCOUNT"
    echo "#   region:     $REGION"
    echo "#   repository: $REPOSITORY"
    echo "#   tag:        $TAG"
}

ensure_repository() {
    local describe=(aws ecr describe-repositories --region "$REGION" --repository-names "$REPOSITORY")
    local create=(aws ecr create-repository --region "$REGION" --repository-name "$REPOSITORY")
    local error
    if [[ "$DRY_RUN" == 1 ]]; then
        echo "$(print_command "${describe[@]}") || $(print_command "${create[@]}")"
        return
    fi
    if error="$("${describe[@]}" 2>&1 >/dev/null)"; then
        return
    fi
    [[ "$error" == *RepositoryNotFoundException* ]] \
        || die "could not look up ECR repository '$REPOSITORY' in $REGION: $error"
    run "${create[@]}" >/dev/null
}

log_in_to_registry() {
    local password=(aws ecr get-login-password --region "$REGION")
    local login=("$DOCKER" login --username AWS --password-stdin "$REGISTRY")
    if [[ "$DRY_RUN" == 1 ]]; then
        echo "$(print_command "${password[@]}") | $(print_command "${login[@]}")"
        return
    fi
    printf '+ %s | %s\n' "$(print_command "${password[@]}")" "$(print_command "${login[@]}")" >&2
    "${password[@]}" | "${login[@]}"
}

push_image() {
    run "$DOCKER" tag "$LOCAL_TAG" "$IMAGE"
    run "$DOCKER" push "$IMAGE"
}

print_next_step() {
    if [[ "$VARIANT" == gpu ]]; then
        echo "# To train on GPUs, set [aws] ecr_image_uri = \"$IMAGE\" and a GPU instance_type (e.g. ml.g5.xlarge) in project.toml."
    else
        echo "# launch.py and job_launcher.ipynb start jobs with $IMAGE ([aws] ecr_image_uri in project.toml)."
    fi
}
