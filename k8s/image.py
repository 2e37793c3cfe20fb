"""The service's image built with Podman from the repository's Dockerfile, on Ray's image or, where
no container registry is reachable (CI), on a stand-in base built here from Debian's packages.

    uv run python -m k8s.image                 # build (or reuse) the stand-in base, then the image
    uv run python -m k8s.image --base IMAGE    # the image on another base, given by its digest

The stand-in (k8s/stand-in-base.Containerfile) is a `debootstrap --variant=minbase bookworm`
root filesystem with Python 3.11 and Ray's image's user and layout. It is tagged by a hash of
its recipe and reused while that is unchanged. The image build reaches only the package indexes
(`--network host`), with the machine's CA bundle mounted into the steps that download (the
Dockerfile's `host-ca` build context), never copied into the image.

Podman runs with k8s/containers.conf unless CONTAINERS_CONF names another file.
"""

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTAINERS_CONF = ROOT / "k8s" / "containers.conf"
STAND_IN_RECIPE = ROOT / "k8s" / "stand-in-base.Containerfile"
DOCKERFILE = ROOT / "Dockerfile"
STAND_IN = "localhost/fraud-scoring-stand-in-base"
IMAGE = "localhost/fraud-scoring"
# What the stand-in's root filesystem holds besides Debian's minimal base.
DEBIAN_SUITE = "bookworm"
DEBIAN_PACKAGES = ("python3", "python3-venv", "ca-certificates")
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

logger = logging.getLogger("k8s.image")


class ImageBuildError(RuntimeError):
    """A tool is missing, or a build step failed."""


@dataclass(frozen=True)
class BuiltImage:
    """An image in Podman's local storage, and what building it took."""

    reference: str  # name:tag
    digest: str  # sha256:...
    size_bytes: int
    build_s: float  # 0 when it was there already

    @property
    def pinned(self) -> str:
        """The reference by digest (name@sha256:...), as a Dockerfile's FROM should name it."""
        return f"{self.reference.rsplit(':', 1)[0]}@{self.digest}"


def podman_env() -> dict[str, str]:
    """This process's environment with the Podman settings (k8s/containers.conf by default)."""
    return os.environ | {"CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(CONTAINERS_CONF))}


def missing_tools(*, base: bool = True) -> list[str]:
    """The commands that building needs and this machine lacks (debootstrap only for the base)."""
    needed = ["podman", "runc"] + (["debootstrap", "tar"] if base else [])
    return [tool for tool in needed if shutil.which(tool) is None]


def podman(*args: str, capture: bool = True, timeout_s: float = 1800) -> str:
    """Run `podman args...`; its standard output, or ImageBuildError with its last lines."""
    done = subprocess.run(
        ["podman", *args],
        env=podman_env(),
        capture_output=capture,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        tail = "\n".join(((done.stdout or "") + (done.stderr or "")).splitlines()[-25:])
        raise ImageBuildError(f"podman {' '.join(args[:2])} failed ({done.returncode}):\n{tail}")
    return done.stdout or ""


def image_exists(reference: str) -> bool:
    done = subprocess.run(
        ["podman", "image", "exists", reference], env=podman_env(), check=False, timeout=60
    )
    return done.returncode == 0


def inspect(reference: str, build_s: float = 0.0) -> BuiltImage:
    (info,) = json.loads(podman("image", "inspect", reference))
    return BuiltImage(reference, info["Digest"], int(info["Size"]), build_s)


def stand_in_tag() -> str:
    """The stand-in's tag: a hash of everything it is built from."""
    recipe = hashlib.sha256()
    recipe.update(STAND_IN_RECIPE.read_bytes())
    recipe.update(" ".join((DEBIAN_SUITE, *DEBIAN_PACKAGES)).encode())
    return f"{STAND_IN}:{recipe.hexdigest()[:12]}"


def stand_in_base() -> BuiltImage:
    """Ray's image's stand-in, built unless one of the same recipe is there already."""
    reference = stand_in_tag()
    if image_exists(reference):
        return inspect(reference)
    if os.geteuid() != 0:
        raise ImageBuildError("debootstrap builds the stand-in base as root only")
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="stand-in-"))
    rootfs_image = f"{STAND_IN}-rootfs:{reference.rsplit(':', 1)[1]}"
    try:
        rootfs = work / "rootfs"
        logger.info("debootstrap %s into %s", DEBIAN_SUITE, rootfs)
        done = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(DEBIAN_PACKAGES)}",
                DEBIAN_SUITE,
                str(rootfs),
            ],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        if done.returncode != 0:
            raise ImageBuildError(f"debootstrap failed:\n{done.stdout[-2000:]}{done.stderr}")
        with subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE) as tar:
            imported = subprocess.run(
                ["podman", "import", "-", rootfs_image],
                stdin=tar.stdout,
                env=podman_env(),
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        if imported.returncode != 0 or tar.returncode != 0:
            raise ImageBuildError(f"podman import failed: {imported.stderr[-2000:]}")
        podman(
            "build",
            "--network=none",  # nothing to download: the user and the venv only
            f"--build-arg=ROOTFS={rootfs_image}",
            f"--file={STAND_IN_RECIPE}",
            f"--tag={reference}",
            str(work),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        subprocess.run(
            ["podman", "rmi", "--force", rootfs_image],
            env=podman_env(),
            capture_output=True,
            check=False,
            timeout=120,
        )
    built = inspect(reference, time.monotonic() - started)
    logger.info("Stand-in base %s built in %.0f s", built.pinned, built.build_s)
    return built


def build_image(base: str, tag: str = "rehearsal") -> BuiltImage:
    """The Dockerfile built on `base` (a reference by digest) as IMAGE:tag."""
    reference = f"{IMAGE}:{tag}"
    args = [
        "build",
        "--network=host",  # the package indexes; nothing else is reached
        "--format=docker",  # OCI images have no HEALTHCHECK
        f"--build-arg=BASE_IMAGE={base}",
        f"--file={DOCKERFILE}",
        f"--tag={reference}",
    ]
    if SYSTEM_CA_BUNDLE.is_file():
        args.append(f"--build-context=host-ca={SYSTEM_CA_BUNDLE.parent}")
    started = time.monotonic()
    podman(*args, str(ROOT))
    built = inspect(reference, time.monotonic() - started)
    logger.info(
        "Image %s (%s) built in %.0f s, %.0f MB",
        reference,
        built.digest,
        built.build_s,
        built.size_bytes / 1e6,
    )
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m k8s.image", description=__doc__)
    parser.add_argument("--base", help="the base image by digest (default: the stand-in)")
    parser.add_argument("--tag", default="rehearsal", help=f"{IMAGE}'s tag (%(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    missing = missing_tools(base=args.base is None)
    if missing:
        logger.error("Missing: %s (Debian packages podman, runc, debootstrap)", ", ".join(missing))
        return 1
    base = args.base or stand_in_base().pinned
    built = build_image(base, args.tag)
    summary = {
        "image": built.reference,
        "digest": built.digest,
        "base": base,
        "size_mb": round(built.size_bytes / 1e6),
        "build_s": round(built.build_s, 1),
    }
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
