"""Exception classes: each carries a Chinese message for the person at the
counter (``user_message``) and a detail for the developer or log (``detail``)."""
from __future__ import annotations


class KioskError(Exception):
    """Base class. ``str(err)`` gives both messages."""

    default_user_message = "系统出错，请联系工作人员"

    def __init__(self, user_message: str | None = None, detail: str = "") -> None:
        self.user_message = user_message or self.default_user_message
        self.detail = detail
        super().__init__(f"{self.user_message}" + (f" ({detail})" if detail else ""))


class ConfigError(KioskError):
    default_user_message = "配置有误"


class ModelError(KioskError):
    default_user_message = "人脸模型不可用，请联系管理员"


class ImageError(KioskError):
    default_user_message = "图片无法读取"


class ModelMismatchError(KioskError):
    default_user_message = "人脸模板与当前模型不一致，需要重新建立索引或重新采集"


class TemplateKeyError(KioskError):
    default_user_message = "人脸数据密钥缺失或不正确，请联系管理员"


class StorageError(KioskError):
    default_user_message = "数据保存失败（存储空间不足或数据库不可用），本次操作未生效，请联系管理员"


class StoreBusyError(StorageError):
    """The store is busy (SQLite's write lock held too long, a PostgreSQL lock or
    serialization conflict): nothing was kept, the same action may simply be tried again."""

    default_user_message = "系统繁忙，请稍后再试（本次操作未生效）"
    retryable = True


class DiskFullError(StorageError):
    default_user_message = "存储空间不足，本次操作未保存，请联系管理员清理磁盘"


class NotFoundError(KioskError):
    default_user_message = "未找到"


class ValidationError(KioskError):
    default_user_message = "数据有误"


class ImportFileError(KioskError):
    """A file that cannot be imported; ``problems`` lists row-level errors."""

    default_user_message = "导入文件有误"

    def __init__(self, user_message: str | None = None, detail: str = "",
                 problems: list | None = None) -> None:
        super().__init__(user_message, detail)
        self.problems = problems or []


class BillingError(KioskError):
    default_user_message = "结算失败"


class IdempotencyConflictError(ValidationError):
    """The idempotency key was used for a different request (resident, dishes or payment)."""

    default_user_message = "这个请求编号已用于另一笔订单"


class InsufficientBalanceError(BillingError):
    default_user_message = "余额不足，请充值或换一种付款方式"


class ResidentStatusError(BillingError):
    """The roster says the resident moved away or died (迁出 / 死亡, from its date): no
    checkout; the elder is sent to staff (kiosk.billing.status)."""

    default_user_message = "不能就餐，请找工作人员"


class OfflineLimitError(BillingError):
    """The terminal cannot reach the district server and this balance payment is over a
    cap the district set for offline sales (kiosk.billing.offline): cash still works."""

    default_user_message = "网络暂时断开，这笔不能用余额付，请用现金或找工作人员"


class OfflineSaleCapError(OfflineLimitError):
    """Offline: one meal's balance payment over the district's per-sale cap."""


class OfflineDayCapError(OfflineLimitError):
    """Offline: the resident's balance payments of the day over the district's per-day cap."""


class BlockedCardError(BillingError):
    """The card is on the district's blocked list (挂失卡): refused at every terminal."""

    default_user_message = "这张卡已挂失，请找工作人员"


class BlockedResidentError(BillingError):
    """The resident is on the district's blocked list: no checkout, the elder sees staff."""

    default_user_message = "暂时不能在这里就餐，请找工作人员"


class SoldOutError(BillingError):
    default_user_message = "这道菜已售完"


class PermissionDeniedError(KioskError):
    default_user_message = "没有权限"


class TooManyAttemptsError(PermissionDeniedError):
    """Wrong passwords in a row: wait ``retry_after`` seconds (console and server logins)."""
    default_user_message = "登录失败次数过多，请稍后再试"

    def __init__(self, user_message: str | None = None, detail: str = "", retry_after: int = 1) -> None:
        super().__init__(user_message, detail)
        self.retry_after = retry_after


class ConsentRequiredError(KioskError):
    default_user_message = "尚未登记人脸授权，不能采集人脸"


class DuplicateFaceError(KioskError):
    default_user_message = "此人脸已登记在另一位居民名下"

    def __init__(self, user_message: str | None = None, detail: str = "",
                 other_resident_id: str | None = None, other_name: str | None = None,
                 score: float | None = None) -> None:
        super().__init__(user_message, detail)
        self.other_resident_id = other_resident_id
        self.other_name = other_name
        self.score = score


class DistrictError(KioskError):
    """The district protocol between a terminal and the server (both sides raise and read these)."""
    default_user_message = "区服务器操作失败"
    http_status = 400


class ServerOnlyError(DistrictError):
    """A write only the district server may make, tried on a terminal (refused by the
    store's change tracking and by the imports)."""
    default_user_message = "这是区服务器的终端：导入和区级数据只能在区服务器上修改"
    http_status = 403


class ServerUnreachableError(DistrictError):
    default_user_message = "连不上区服务器（离线），本机照常售餐，订单会在恢复联网后自动上传"
    http_status = 503


class TerminalAuthError(DistrictError):
    default_user_message = "此终端的令牌无效或已被吊销，请联系区管理员"
    http_status = 401


class PayloadTooLargeError(DistrictError):
    """A request body over the server's limit (KIOSK_PUSH_MAX_BYTES), refused unread."""
    default_user_message = "上传的数据太大，请分批上传"
    http_status = 413


class TerminalOnlyError(DistrictError):
    default_user_message = "这台机器不是区服务器的终端（未设置 KIOSK_SERVER_URL / KIOSK_SERVER_TOKEN）"


class BackupError(KioskError):
    """A backup could not be made, or an archive is refused by `kiosk restore` (corrupt,
    not a kiosk backup, a wrong passphrase): nothing was written or changed."""

    default_user_message = "备份或恢复失败，未做任何改动"
