#!/usr/bin/env python3
"""Build the Lightkeeper test guest: a Debian kernel plus a busybox-static initramfs.

Usage: ``python3 guest/build.py [CACHE_DIR]`` (default ``guest/out``). Prints the kernel and
initramfs paths, one per line, as ``kernel=PATH`` and ``initrd=PATH``.

The guest also runs the QEMU guest agent (Debian's ``qemu-guest-agent``, with the host's copies
of the shared libraries it links) on its virtio-serial port, with an fsfreeze hook that makes
the record writer stop at a record boundary and say so on disk: the oracle of
application-level consistency (see init.sh). Boot with ``lk.agent=off`` to run without it.

Why this shape: the guest is the crash-consistency oracle for live snapshots, so it must be
built from nothing but Debian's registry (``apt-get download``) and the host's
``busybox-static``. Python's stdlib writes the cpio archive itself, so the build needs neither
root (``/dev/console`` is an archive entry, not a mknod) nor the ``cpio`` tool, and it is
deterministic, so re-running it with unchanged inputs is a no-op.
"""

from __future__ import annotations

import fcntl
import glob
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
META_PACKAGE = "linux-image-cloud-amd64"  # small (no GPU/Wi-Fi drivers), has virtio as modules
FALLBACK_META = "linux-image-amd64"
BUSYBOX = Path("/bin/busybox")
# virtio disk + PCI transport, and the ACPI power button + evdev so busybox acpid can turn
# QMP ``system_powerdown`` into a clean poweroff. Dependencies are added from modinfo.
# virtio_console carries the guest agent's virtio-serial port; brd gives it a RAM disk with a
# real filesystem (/data) to freeze.
WANTED_MODULES = ["virtio_blk", "virtio_pci", "button", "evdev", "virtio_console", "brd"]
AGENT_PACKAGE = "qemu-guest-agent"
AGENT_BINARY = "usr/sbin/qemu-ga"
BUILD_VERSION = "2"  # bump when the archive layout changes without the inputs changing


def log(message: str) -> None:
    print(f"build: {message}", file=sys.stderr)


def resolve_kernel_package() -> str:
    """The versioned image package the meta package currently points at."""
    for meta in (META_PACKAGE, FALLBACK_META):
        result = subprocess.run(
            ["apt-cache", "depends", meta], capture_output=True, text=True, check=False
        )
        match = re.search(r"Depends:\s*(linux-image-\S+)", result.stdout)
        if match:
            return match.group(1)
    raise SystemExit(
        f"build: cannot resolve {META_PACKAGE} (run `apt-get update` first): {result.stderr}"
    )


def fetch_deb(package: str, cache: Path) -> Path:
    existing = sorted(cache.glob(f"{package}_*.deb"))
    if existing:
        return existing[-1]
    log(f"apt-get download {package}")
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        os.chmod(tmp, 0o755)  # lets apt's sandbox user write there when run as root
        # apt-get's progress goes to stderr: stdout carries only the kernel=/initrd= lines.
        subprocess.run(
            ["apt-get", "download", "-q", package], cwd=tmp, check=True, stdout=sys.stderr
        )
        (deb,) = Path(tmp).glob("*.deb")
        return Path(shutil.move(str(deb), cache / deb.name))


def module_depends(data: bytes) -> list[str]:
    """The ``depends=`` entry of a module's .modinfo section (found as a NUL-ended string)."""
    match = re.search(rb"(?:^|\x00)depends=([^\x00]*)\x00", data)
    if not match or not match.group(1):
        return []
    return match.group(1).decode().split(",")


def read_module(path: Path) -> bytes:
    """Modules may be shipped compressed; the guest's insmod wants them plain."""
    raw = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(raw)
    if path.name.endswith(".gz"):
        return gzip.decompress(raw)
    if path.name.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    return raw


def collect_modules(moddir: Path) -> list[tuple[str, bytes]]:
    """Wanted modules and their dependencies, dependencies first, built-ins skipped."""
    index: dict[str, Path] = {}
    for path in moddir.rglob("*.ko*"):
        name = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", path.name).replace("-", "_")
        index[name] = path
    builtin_file = moddir / "modules.builtin"
    builtin = set()
    if builtin_file.exists():
        for line in builtin_file.read_text().split():
            builtin.add(Path(line).name.removesuffix(".ko").replace("-", "_"))
    ordered: list[tuple[str, bytes]] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        name = name.replace("-", "_")
        if name in seen:
            return
        seen.add(name)
        if name in builtin:
            return
        if name not in index:
            raise SystemExit(f"build: module {name} is neither built in nor shipped")
        data = read_module(index[name])
        for dep in module_depends(data):
            visit(dep)
        ordered.append((name, data))

    for wanted in WANTED_MODULES:
        visit(wanted)
    return ordered


class Cpio:
    """Minimal newc writer: enough for regular files, directories, symlinks and nodes."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(
        self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
    ) -> None:
        encoded = name.encode() + b"\x00"
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0]
        self.ino += 1
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self.buf.write(header + encoded)
        self.buf.write(b"\x00" * (-(len(header) + len(encoded)) % 4))
        self.buf.write(data)
        self.buf.write(b"\x00" * (-len(data) % 4))

    def dir(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int) -> None:
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


DIRECTORIES = "bin dev proc sys tmp data etc etc/acpi etc/acpi/PWRF lib lib/modules lib64".split()
POWER_SCRIPT = b"""#!/bin/sh
# busybox acpid runs this on the ACPI power button (QMP system_powerdown).
echo "LKGUEST powerdown" > /dev/console
sync
poweroff -f
"""


def shared_libraries(binary: Path) -> dict[str, Path]:
    """Archive path -> host file of every library ``binary`` links, its loader included.

    The host is the same Debian release the agent package comes from, so its libraries are
    the ones the package was built against; ``ldd`` resolves them like the guest's loader.
    """
    result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
    found: dict[str, Path] = {}
    for line in result.stdout.splitlines():
        missing = re.match(r"\s*(\S+) => not found", line)
        if missing:
            raise SystemExit(f"build: {binary.name} needs {missing.group(1)}, not on this host")
        match = re.match(r"\s*(?:\S+ => )?(/\S+) \(0x", line)
        if match:
            path = Path(match.group(1))
            found[str(path).lstrip("/")] = path.resolve()
    if result.returncode != 0 or not found:
        raise SystemExit(f"build: ldd {binary} failed: {result.stderr.strip()}")
    return found


def agent_files(root: Path) -> list[tuple[str, bytes]]:
    """The guest agent and its libraries as (archive path, bytes), from the unpacked .deb."""
    binary = root / AGENT_BINARY
    files = [("bin/qemu-ga", binary.read_bytes())]
    for name, path in sorted(shared_libraries(binary).items()):
        files.append((name, path.read_bytes()))
    return files


FREEZE_HOOK = (HERE / "fsfreeze-hook.sh").read_bytes()


def build_initramfs(
    modules: list[tuple[str, bytes]], init: bytes, agent: list[tuple[str, bytes]]
) -> bytes:
    archive = Cpio()
    for name in DIRECTORIES:
        archive.dir(name)
    made = set(DIRECTORIES)
    for name, data in agent:
        parent = str(Path(name).parent)
        for index in range(1, len(Path(parent).parts) + 1):
            directory = "/".join(Path(parent).parts[:index])
            if directory not in made:
                archive.dir(directory)
                made.add(directory)
        archive.file(name, data, 0o755)
    archive.file("etc/lk-fsfreeze-hook", FREEZE_HOOK, 0o755)
    archive.chardev("dev/console", 5, 1)
    archive.chardev("dev/null", 1, 3)
    archive.file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    archive.symlink("bin/sh", "busybox")
    archive.file("init", init, 0o755)
    archive.file("etc/acpi/PWRF/00000080", POWER_SCRIPT, 0o755)
    for name, data in modules:
        archive.file(f"lib/modules/{name}.ko", data)
    archive.file("etc/modules", "".join(f"{name}\n" for name, _ in modules).encode())
    # mtime=0 keeps the output byte-identical for identical inputs
    return gzip.compress(archive.finish(), compresslevel=6, mtime=0)


def main(argv: list[str]) -> int:
    cache = Path(argv[1]) if len(argv) > 1 else HERE / "out"
    cache.mkdir(parents=True, exist_ok=True)
    cache = cache.resolve()
    with (cache / ".lock").open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # parallel test workers build once
        return build(cache)


def build(cache: Path) -> int:
    kernel_out, initrd_out = cache / "vmlinuz", cache / "initramfs.img"
    if not BUSYBOX.exists():
        raise SystemExit("build: /bin/busybox missing (apt-get install busybox-static)")
    init = (HERE / "init.sh").read_bytes()
    package = os.environ.get("LIGHTKEEPER_GUEST_KERNEL_PKG") or resolve_kernel_package()
    deb = fetch_deb(package, cache)
    for stale in cache.glob("linux-image-*.deb"):
        if stale != deb:
            stale.unlink()  # the meta package moved on: keep the cache at one kernel
    agent_deb = fetch_deb(AGENT_PACKAGE, cache)
    inputs = {
        "version": BUILD_VERSION,
        "deb": deb.name,
        "busybox": hashlib.sha256(BUSYBOX.read_bytes()).hexdigest(),
        "init": hashlib.sha256(init + POWER_SCRIPT + FREEZE_HOOK).hexdigest(),
        "agent": agent_deb.name,
        "modules": WANTED_MODULES,
        "builder": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
    }
    stamp = cache / "build.json"
    if kernel_out.exists() and initrd_out.exists() and stamp.exists():
        try:
            if json.loads(stamp.read_text()) == inputs:
                log("up to date")
                print(f"kernel={kernel_out}\ninitrd={initrd_out}")
                return 0
        except ValueError:
            pass
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        root = Path(tmp)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, stdout=sys.stderr)
        (vmlinuz,) = glob.glob(str(root / "boot" / "vmlinuz-*"))
        moddirs = sorted((root / "lib" / "modules").iterdir()) or sorted(
            (root / "usr" / "lib" / "modules").iterdir()
        )
        modules = collect_modules(moddirs[0])
        log("modules: " + " ".join(name for name, _ in modules))
        agent_root = root / "agent"
        subprocess.run(
            ["dpkg-deb", "-x", str(agent_deb), str(agent_root)], check=True, stdout=sys.stderr
        )
        image = build_initramfs(modules, init, agent_files(agent_root))
        for src_bytes, dest in ((Path(vmlinuz).read_bytes(), kernel_out), (image, initrd_out)):
            part = dest.with_suffix(".part")
            part.write_bytes(src_bytes)
            os.replace(part, dest)
    stamp.write_text(json.dumps(inputs, indent=1))
    print(f"kernel={kernel_out}\ninitrd={initrd_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
