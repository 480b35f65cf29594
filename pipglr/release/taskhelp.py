"""The help texts of the invoke tasks of this package (tasks.py shows them with
``invoke --help TASK``; kept here so the tasks stay thin)."""

from __future__ import annotations

REBUILD_HELP = {
    "published": "last published image: docker://HOST/NAME:TAG, or a local image name",
    "candidate": "freshly built image whose labels give every current fact",
    "base_image": "without --candidate: base image whose local digest counts",
    "runner_version": "without --candidate: RUNNER_VERSION of the next build",
    "runner_binary": "without --candidate: local gitlab-runner to take the sha256 of",
    "runner_sha256": "without --candidate: the runner sha256 (else release.sha256)",
    "tls_verify": "verify the registry's TLS certificate (--no-tls-verify for a test one)",
}


PUBLISH_HELP = {
    "to": "registry repository to push to: docker://HOST/NAME",
    "tags": "comma-separated tags; {runner_version} and {date} are filled in",
    "image": "local image to push (default: config pipglr.image)",
    "arch_images": "comma-separated per-arch images: push them as one manifest list",
    "retries": "push attempts per tag before giving up (3)",
    "tls_verify": "verify the registry's TLS certificate (--no-tls-verify for a test one)",
}


TRIGGER_HELP = {
    "projects": "TOML list of [[downstream]] projects (default ci/downstream.toml)",
    "image": "what was published, passed on as PIPGLR_IMAGE",
    "api_url": "GitLab API URL (default $CI_API_V4_URL)",
    "dry_run": "print the requests (tokens hidden); send nothing",
}


CHAIN_HELP = {
    "directory": "image definitions: NAME/Containerfile or NAME/build [+ depends, image, "
    "sources]; ci/images is pipglr's own",
    "dry_run": "print the build order and why each image is rebuilt; build nothing",
    "prefix": "image name of NAME/ is PREFIX + NAME unless NAME/image says (localhost/)",
    "rebuild": "NAME[,NAME]: rebuild these (and so their dependents) whatever their state",
}
