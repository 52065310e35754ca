"""Separate consent for face data (PIPL art. 28). No consent, no template."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.db import audit
from kiosk.db.models import FaceConsent
from kiosk.errors import ConsentRequiredError, ValidationError

CONSENT_TEXT_VERSION = "face-consent-2026.2"
# the text the elder (or guardian) signs, by version; 2026.2 adds the refreshed templates
# (kiosk.services.template_refresh.REFRESH_CONSENT_VERSIONS: a consent on an older text does
# not allow them)
CONSENT_TEXT = {
    "face-consent-2026.2": (
        "人脸识别就餐授权书\n"
        "一、用途：本人同意社区长者食堂采集本人的人脸信息，仅用于就餐时识别身份、结算餐费和政府补贴，"
        "以及证明本人亲自到场就餐。\n"
        "二、保存什么：保存由照片计算出的人脸特征（模板），加密保存；经本人另行同意，才保存加密的人脸截图。"
        "不保存现场录像。\n"
        "三、随年龄更新：人的面容会随年龄变化。本人刷脸就餐时，如果系统非常有把握地认出本人并通过活体检查，"
        "系统可以每月最多增加一张新的人脸模板，以便以后仍能认出本人。登记时的模板始终保留，"
        "每人最多保存五张模板；与登记时相差太远的新模板不会保存。每次增加都记入操作日志。\n"
        "四、同步：人脸模板在本区食堂之间同步，使本人在本区任一食堂都能刷脸就餐。\n"
        "五、撤回：本人（或监护人）可以随时撤回授权。撤回后，本人的全部人脸模板（包括随年龄更新的模板）"
        "和截图立即删除，本人仍可凭助老卡或手机号就餐，订单和账目照常保留。\n"
        "六、本授权与其他授权分开签署，不签署不影响就餐。"),
}
GIVERS = ("self", "guardian")


def active_consent(session: Session, resident_id: str) -> FaceConsent | None:
    return session.scalars(select(FaceConsent).where(
        FaceConsent.resident_id == resident_id, FaceConsent.withdrawn_at.is_(None))
        .order_by(FaceConsent.created_at.desc())).first()


def withdrawn_before(session: Session, resident_id: str) -> bool:
    """The resident withdrew a consent before (their face data was erased)."""
    return session.scalar(select(FaceConsent.id).where(
        FaceConsent.resident_id == resident_id, FaceConsent.withdrawn_at.is_not(None)).limit(1)) is not None


def record_consent(session: Session, resident_id: str, given_by: str, staff_id: str, *,
                   guardian_name: str | None = None, allows_crop: bool = False,
                   source: str = "desk", text_version: str = CONSENT_TEXT_VERSION) -> FaceConsent:
    if given_by not in GIVERS:
        raise ValidationError(f"授权人只能是本人（self）或监护人（guardian），不是 {given_by}",
                              detail=f"consent given_by must be one of {GIVERS}, got {given_by!r}")
    if source == "roster" and withdrawn_before(session, resident_id):
        # the roster's 人脸授权 column is the paper form signed long ago; after an erasure
        # only a consent given anew, in person, brings face data back
        raise ConsentRequiredError(
            f"居民 {resident_id} 曾撤回人脸授权（人脸数据已删除），花名册中的授权不能代替新的授权。"
            f"请本人（或监护人）重新签署授权书，由工作人员用 kiosk enroll --consent 登记",
            detail=f"{resident_id} withdrew consent before; a roster row does not renew it")
    c = FaceConsent(resident_id=resident_id, given_by=given_by, guardian_name=guardian_name,
                    staff_id=staff_id, text_version=text_version, allows_crop=allows_crop, source=source)
    session.add(c)
    audit.record(session, staff_id, "consent.record", resident_id, given_by=given_by,
                 source=source, text_version=text_version, allows_crop=allows_crop)
    return c
