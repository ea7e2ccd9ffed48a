#!/usr/bin/env bash
# The mlpower image's full name, from one place: MLPOWER_REGISTRY (default localhost:5000, a lab
# registry) and a tag from the git commit, so a tag names one content and is never reused.
#
#   scripts/image_ref.sh                 # localhost:5000/mlpower:git-0123456789ab
#   scripts/image_ref.sh mlpower-slim    # localhost:5000/mlpower-slim:git-0123456789ab (the
#                                        # simulator and agent image, deploy/Dockerfile --target slim)
#   scripts/image_ref.sh --tag           # git-0123456789ab
#
# With uncommitted changes the tag gets "-dirty-" and a hash of them (what differs from the
# commit, and the untracked files): still one tag per content, but not one to publish
# (`make image-push` refuses it). MLPOWER_IMAGE_TAG overrides the tag (a release, say "0.1.0").
set -euo pipefail
cd "$(dirname "$0")/.."
registry="${MLPOWER_REGISTRY:-localhost:5000}"
tag="${MLPOWER_IMAGE_TAG:-}"
if [ -z "$tag" ]; then
  tag="git-$(git rev-parse --short=12 HEAD)"
  changes="$( { git diff HEAD --binary; git ls-files -o --exclude-standard -z | xargs -0r sha256sum; } | sha256sum)"
  if [ -n "$(git status --porcelain --untracked-files=normal)" ]; then
    tag="$tag-dirty-${changes:0:8}"
  fi
fi
case "${1:-mlpower}" in
  --tag) echo "$tag" ;;
  mlpower|mlpower-slim) echo "${registry%/}/${1:-mlpower}:$tag" ;;
  *) echo "usage: $0 [mlpower|mlpower-slim|--tag]" >&2; exit 2 ;;
esac
