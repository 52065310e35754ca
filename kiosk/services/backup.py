"""Backups of a store and its template key, and their restore (docs/operations.md).

An archive is one uncompressed tar file with three members:

* ``manifest.json``: format and version, when, the software, the dialect, the schema's
  migration, the database member's SHA-256 and size, row counts of the copy (orders,
  audit entries, templates) and the template key's id (``TemplateCipher.key_id``);
* the database: ``kiosk.db`` (SQLite, taken with SQLite's online backup API in one
  step: a consistent snapshot while the kiosk keeps selling; WAL mode lets writers go
  on meanwhile) or ``district.pgdump`` (``pg_dump --format=custom`` on a snapshot the
  backup exported, so the manifest's counts are those of the dump);
* ``template.key.enc``: the template key encrypted under a passphrase: scrypt
  (n=2^17, r=8, p=1) derives a 256-bit key, AES-256-GCM encrypts, and the manifest's
  SHA-256 is the associated data, so a manifest edited or swapped in fails to decrypt
  like a wrong passphrase does.

The database copy itself is not encrypted (face templates in it are, under the template
key): keep archives as you keep the store (0600, see docs/operations.md).

Restore checks everything first (tar readable, manifest, the database member's hash and
SQLite's integrity check, the passphrase) and only then changes anything: SQLite is
written into the live database file by the backup API in one transaction (other
connections see the old store or the new one); PostgreSQL by ``pg_restore
--single-transaction``; the key file is replaced by a rename after the database (the old
one kept beside it). A failure at any point leaves the store as it was.
"""
from __future__ import annotations

import base64
import glob
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from kiosk import __version__
from kiosk.errors import BackupError, ConfigError

FORMAT = "changshou-kiosk-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
KEY_MEMBER = "template.key.enc"
SQLITE_MEMBER = "kiosk.db"
PG_MEMBER = "district.pgdump"
SCRYPT = {"n": 2 ** 17, "r": 8, "p": 1}
MIN_PASSPHRASE = 8
COUNTED = ("orders", "audit_log", "face_templates", "residents")


# -- the template key under a passphrase ----------------------------------------------------

def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def seal_key(key: str, passphrase: str, aad: bytes) -> dict:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt, nonce = os.urandom(16), os.urandom(12)
    ct = AESGCM(_derive(passphrase, salt, **SCRYPT)).encrypt(nonce, key.strip().encode(), aad)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return {"kdf": "scrypt", **SCRYPT, "salt": b64(salt), "aead": "AES-256-GCM", "nonce": b64(nonce),
            "ciphertext": b64(ct)}


def open_key(sealed: dict, passphrase: str, aad: bytes) -> str:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        if sealed.get("kdf") != "scrypt" or sealed.get("aead") != "AES-256-GCM":
            raise ValueError("unknown kdf or cipher")
        n, r, p = int(sealed["n"]), int(sealed["r"]), int(sealed["p"])
        if not (2 ** 10 <= n <= 2 ** 20 and 1 <= r <= 16 and 1 <= p <= 4):
            raise ValueError("scrypt parameters out of range")
        salt, nonce, ct = (base64.b64decode(sealed[k], validate=True) for k in ("salt", "nonce", "ciphertext"))
        key = _derive(passphrase, salt, n, r, p)
    except (KeyError, ValueError, TypeError) as exc:
        raise BackupError("备份文件已损坏：密钥部分无法读取", detail=f"{KEY_MEMBER}: {exc}") from None
    try:
        return AESGCM(key).decrypt(nonce, ct, aad).decode()
    except InvalidTag:
        raise BackupError("备份口令不对（或备份清单被改动过），未做任何改动",
                          detail="AES-GCM tag mismatch: wrong passphrase, or the manifest was altered") from None


# -- what a store is ------------------------------------------------------------------------

def sqlite_path(db_url: str) -> Path | None:
    """The file of an SQLite URL (None for another database)."""
    from sqlalchemy.engine import make_url

    u = make_url(db_url)
    if u.get_backend_name() != "sqlite":
        return None
    if not u.database or u.database == ":memory:":
        raise ConfigError("内存数据库无法备份", detail=f"{db_url}: not a file")
    return Path(u.database)


def libpq(db_url: str) -> tuple[str, dict]:
    """A libpq connection string for pg_dump/pg_restore, and the environment holding the
    password (kept off the command line)."""
    from sqlalchemy.engine import make_url

    u = make_url(db_url)
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    plain = u.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def pg_tool(name: str) -> str:
    """The newest installed pg_dump / pg_restore (a dump needs a pg_dump at least as new
    as the server)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4])
                   if p.split("/")[4].isdigit() else 0)
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"没有找到 {name}：请安装 postgresql-client", detail=f"{name} not on PATH")
    return path


def read_key(settings) -> str:
    """The template key in use (KIOSK_TEMPLATE_KEY, or the key file)."""
    from kiosk.services.security import TemplateCipher

    TemplateCipher.from_settings(settings.template_key, settings.template_key_file, settings.home)  # checks it
    return (settings.template_key or Path(settings.template_key_file).read_text()).strip()


def _sqlite_facts(conn: sqlite3.Connection) -> dict:
    ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
    if ok != "ok":
        raise BackupError("数据库副本未通过完整性检查", detail=f"integrity_check: {ok}")
    rev = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COUNTED}  # noqa: S608
    return {"migration": rev[0] if rev else None, "counts": counts}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- backup -------------------------------------------------------------------------------------

@dataclass
class BackupResult:
    path: Path
    dialect: str
    migration: str | None
    counts: dict
    bytes: int
    key_id: str

    def to_json(self) -> dict:
        return {"path": str(self.path), "dialect": self.dialect, "migration": self.migration,
                "counts": self.counts, "bytes": self.bytes, "key_id": self.key_id}


def backup(settings, out: Path, passphrase: str) -> BackupResult:
    """Write the archive ``out`` (refused when it exists); whole or not at all."""
    from kiosk.services.security import TemplateCipher

    out = Path(out)
    if out.exists():
        raise BackupError(f"{out} 已存在，不会覆盖：请换一个文件名", detail=f"{out} exists")
    if len(passphrase) < MIN_PASSPHRASE:
        raise BackupError(f"备份口令至少 {MIN_PASSPHRASE} 个字符", detail="passphrase too short")
    key = read_key(settings)
    key_id = TemplateCipher(key).key_id
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".kiosk-backup-", dir=out.parent))
    try:
        db_file = sqlite_path(settings.db_url)
        if db_file is not None:
            member, facts = SQLITE_MEMBER, _backup_sqlite(db_file, work / SQLITE_MEMBER)
        else:
            member, facts = PG_MEMBER, _backup_postgres(settings.db_url, work / PG_MEMBER)
        _check_key_opens(facts.pop("sample_template", None), key)
        manifest = {"format": FORMAT, "version": FORMAT_VERSION,
                    "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "software": __version__, "dialect": "sqlite" if db_file is not None else "postgresql",
                    "migration": facts["migration"], "counts": facts["counts"], "key_id": key_id,
                    "database": {"member": member, "sha256": _sha256(work / member),
                                 "bytes": (work / member).stat().st_size}}
        mbytes = json.dumps(manifest, ensure_ascii=False, indent=1).encode()
        sealed = json.dumps(seal_key(key, passphrase, hashlib.sha256(mbytes).digest())).encode()
        tmp = out.with_name(f".{out.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh, tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in ((MANIFEST, mbytes), (KEY_MEMBER, sealed)):
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o600
                tar.addfile(info, io.BytesIO(data))
            tar.add(work / member, arcname=member)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
        return BackupResult(out, manifest["dialect"], manifest["migration"], manifest["counts"],
                            out.stat().st_size, key_id)
    except OSError as exc:
        raise BackupError(f"无法写入备份 {out}", detail=str(exc)) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
        tmp = out.with_name(f".{out.name}.tmp")
        if tmp.exists() and not out.exists():
            tmp.unlink()


def _backup_sqlite(db_file: Path, dest: Path) -> dict:
    if not db_file.is_file():
        raise BackupError(f"没有找到数据库 {db_file}", detail=f"{db_file} missing")
    src = sqlite3.connect(db_file, timeout=30)      # only read (read-only URIs fail on a WAL store without -shm)
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)              # all pages in one step: one consistent snapshot
            dst.execute("PRAGMA journal_mode=DELETE")
            facts = _sqlite_facts(dst)
            facts["sample_template"] = (dst.execute("SELECT embedding_enc FROM face_templates LIMIT 1").fetchone()
                                        or [None])[0]
        finally:
            dst.close()
    finally:
        src.close()
    return facts


def _backup_postgres(db_url: str, dest: Path) -> dict:
    """pg_dump on a snapshot exported by a repeatable-read transaction that also counts
    the rows, so the manifest describes exactly the dump."""
    from sqlalchemy import create_engine, text

    conninfo, env = libpq(db_url)
    eng = create_engine(db_url)
    try:
        with eng.connect() as c:
            c = c.execution_options(isolation_level="REPEATABLE READ")
            with c.begin():
                snap = c.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                rev = c.execute(text("SELECT version_num FROM alembic_version")).scalar()
                counts = {t: c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in COUNTED}
                sample = c.execute(text("SELECT embedding_enc FROM face_templates LIMIT 1")).scalar()
                r = subprocess.run([pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
                                    f"--snapshot={snap}", f"--file={dest}", f"--dbname={conninfo}"],
                                   env=env, capture_output=True, text=True)
                if r.returncode != 0:
                    raise BackupError("pg_dump 失败", detail=r.stderr.strip()[-2000:])
    except BackupError:
        raise
    except Exception as exc:  # noqa: BLE001 - the database unreachable, tables missing
        raise BackupError("无法连接或读取数据库", detail=f"{type(exc).__name__}: {exc}") from None
    finally:
        eng.dispose()
    return {"migration": rev, "counts": counts, "sample_template": sample}


def _check_key_opens(blob: bytes | None, key: str) -> None:
    """The key being backed up must open the store's templates (else the archive would
    carry a key that restores nothing)."""
    if blob is None:
        return
    from kiosk.services.security import TemplateCipher

    try:
        TemplateCipher(key).decrypt(bytes(blob))
    except Exception:  # noqa: BLE001
        raise BackupError("当前的人脸数据密钥打不开数据库里的人脸模板，备份中止",
                          detail="the template key in use does not decrypt the stored templates") from None


# -- restore --------------------------------------------------------------------------------------

@dataclass
class Checked:
    """An archive read and verified (nothing changed yet)."""
    manifest: dict
    key: str
    db_member: Path          # extracted, hash checked, in a private temporary folder
    work: Path

    def cleanup(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


def check_archive(path: Path, passphrase: str, work_dir: Path | None = None) -> Checked:
    """Read and verify the whole archive; any defect raises BackupError naming it."""
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"没有这个备份文件：{path}", detail=f"{path} missing")
    work = Path(tempfile.mkdtemp(prefix=".kiosk-restore-", dir=work_dir))
    try:
        try:
            tar = tarfile.open(path, mode="r:")
        except (tarfile.TarError, OSError) as exc:
            raise BackupError("备份文件已损坏或不是本系统的备份", detail=f"{path}: {exc}") from None
        with tar:
            try:
                members = {m.name: m for m in tar.getmembers()}
                mbytes = _member(tar, members, MANIFEST, 1 << 20)
                try:
                    manifest = json.loads(mbytes)
                except ValueError:
                    raise BackupError("备份文件已损坏：清单不是 JSON", detail="manifest.json unreadable") from None
                if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                    raise BackupError("这不是本系统的备份文件", detail="manifest format mismatch")
                if manifest.get("version") != FORMAT_VERSION:
                    raise BackupError("备份文件的格式版本不受支持，请用更新的软件恢复",
                                      detail=f"archive version {manifest.get('version')}, this software reads "
                                             f"{FORMAT_VERSION}")
                db = manifest.get("database") or {}
                if db.get("member") not in (SQLITE_MEMBER, PG_MEMBER):
                    raise BackupError("备份文件已损坏：清单不完整", detail="manifest: database member")
                sealed = _member(tar, members, KEY_MEMBER, 1 << 16)
                try:
                    sealed_d = json.loads(sealed)
                except ValueError:
                    raise BackupError("备份文件已损坏：密钥部分无法读取", detail=f"{KEY_MEMBER} is not JSON") from None
                key = open_key(sealed_d, passphrase, hashlib.sha256(mbytes).digest())
                m = members.get(db["member"])
                if m is None or not m.isfile():
                    raise BackupError("备份文件已损坏：缺少数据库部分", detail=f"{db['member']} missing")
                dest = work / db["member"]
                h = hashlib.sha256()
                src = tar.extractfile(m)
                with open(dest, "wb") as fh:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        h.update(chunk)
                        fh.write(chunk)
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise BackupError("备份文件已损坏（读到一半出错）", detail=f"{path}: {exc}") from None
        if h.hexdigest() != db.get("sha256") or dest.stat().st_size != db.get("bytes"):
            raise BackupError("备份文件已损坏：数据库部分与清单不符", detail="database member SHA-256 mismatch")
        from kiosk.services.security import TemplateCipher

        if TemplateCipher(key).key_id != manifest.get("key_id"):
            raise BackupError("备份文件已损坏：密钥与清单不符", detail="key id mismatch")
        if db["member"] == SQLITE_MEMBER:
            conn = sqlite3.connect(f"file:{dest}?mode=ro", uri=True)
            try:
                facts = _sqlite_facts(conn)
            except sqlite3.DatabaseError as exc:
                raise BackupError("备份中的数据库已损坏", detail=str(exc)) from None
            finally:
                conn.close()
            if facts["counts"] != manifest.get("counts"):
                raise BackupError("备份文件已损坏：记录数与清单不符", detail=f"{facts['counts']} != manifest")
        return Checked(manifest, key, dest, work)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _member(tar: tarfile.TarFile, members: dict, name: str, limit: int) -> bytes:
    m = members.get(name)
    if m is None or not m.isfile() or m.size > limit:
        raise BackupError("备份文件已损坏或不是本系统的备份", detail=f"{name} missing or too large")
    return tar.extractfile(m).read()


def target_in_use(settings) -> list[str]:
    """What a restore would overwrite: a store with data, a different key file."""
    found = []
    db_file = sqlite_path(settings.db_url)
    if db_file is not None:
        if db_file.is_file() and db_file.stat().st_size > 0:
            found.append(f"数据库 {db_file}")
    else:
        from sqlalchemy import create_engine, inspect

        eng = create_engine(settings.db_url)
        try:
            if inspect(eng).get_table_names():
                found.append(f"数据库 {eng.url.render_as_string(hide_password=True)}")
        except Exception as exc:  # noqa: BLE001
            raise BackupError("无法连接要恢复到的数据库", detail=f"{type(exc).__name__}: {exc}") from None
        finally:
            eng.dispose()
    kf = Path(settings.template_key_file)
    if not settings.template_key and kf.is_file():
        found.append(f"密钥文件 {kf}")
    return found


def restore(settings, checked: Checked, archive: str = "") -> dict:
    """Put a checked archive in place (the caller has confirmed overwriting), then note it
    in the restored store's audit log (``store.restore``: sales after the backup's time
    are gone from this store, and the log says so)."""
    from kiosk.services.security import TemplateCipher

    man = checked.manifest
    if settings.template_key and TemplateCipher(settings.template_key).key_id != man["key_id"]:
        raise BackupError("环境变量 KIOSK_TEMPLATE_KEY 与备份中的密钥不同：恢复后人脸模板将无法解密。"
                          "请取消该变量（使用恢复的密钥文件）或设为备份时的密钥",
                          detail="KIOSK_TEMPLATE_KEY differs from the archive's key")
    db_file = sqlite_path(settings.db_url)
    if (db_file is None) != (man["dialect"] == "postgresql"):
        raise BackupError(f"备份是 {man['dialect']} 的，本机的数据库不是", detail="dialect mismatch")
    key_tmp = None
    if not settings.template_key:
        kf = Path(settings.template_key_file)
        kf.parent.mkdir(parents=True, exist_ok=True)
        key_tmp = kf.with_name(f".{kf.name}.restore")
        fd = os.open(key_tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(checked.key + "\n")
    try:
        if db_file is not None:
            _restore_sqlite(checked.db_member, db_file)
        else:
            _restore_postgres(checked.db_member, settings.db_url)
    except BaseException:
        if key_tmp is not None:
            key_tmp.unlink(missing_ok=True)
        raise
    kept = None
    if key_tmp is not None:
        kf = Path(settings.template_key_file)
        if kf.is_file() and kf.read_text().strip() != checked.key:
            kept = kf.with_name(f"{kf.name}.before-restore-{datetime.now():%Y%m%d%H%M%S}")
            os.replace(kf, kept)
        os.replace(key_tmp, kf)
    _audit_restore(settings, man, archive)
    return {"dialect": man["dialect"], "created_at": man["created_at"], "migration": man["migration"],
            "counts": man["counts"], "key_file": None if settings.template_key else str(settings.template_key_file),
            "previous_key_kept_at": str(kept) if kept else None}


def _audit_restore(settings, man: dict, archive: str) -> None:
    import getpass

    from kiosk.db import audit, changes
    from kiosk.db.session import Database

    db = Database(settings.db_url)          # brings an archive of an older schema to head
    try:
        with db.session() as s:
            s.info[changes.APPLY] = True    # this store's own history, not a change for the district
            audit.record(s, "system", "store.restore", Path(archive).name or None,
                         backup_created_at=man["created_at"], migration=man["migration"],
                         orders=man["counts"]["orders"], key_id=man["key_id"], os_user=getpass.getuser())
    finally:
        db.dispose()


def _restore_sqlite(src_file: Path, db_file: Path) -> None:
    db_file.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{src_file}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(db_file, timeout=30)
        try:
            dst.execute("PRAGMA journal_mode=WAL")
            src.backup(dst)      # one write transaction on the live file: old store or new, never half
        except sqlite3.Error as exc:
            raise BackupError("写入数据库失败，数据库保持原样", detail=str(exc)) from None
        finally:
            dst.close()
    finally:
        src.close()


def _restore_postgres(dump: Path, db_url: str) -> None:
    conninfo, env = libpq(db_url)
    r = subprocess.run([pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges",
                        "--single-transaction", "--exit-on-error", f"--dbname={conninfo}", str(dump)],
                       env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise BackupError("pg_restore 失败，数据库保持原样（单一事务已回滚）", detail=r.stderr.strip()[-2000:])
