"""The audit log in Chinese: every action code's name (``ACTION_ZH``, the one mapping,
written once), and one sentence per entry instead of its raw JSON: money in yuan, times
in China time, codes in words (``describe``). The console's audit page and its exports
use it; the raw detail stays available beside the sentence."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from kiosk.money import fen_to_yuan
from kiosk.timeutil import to_cst

ACTION_ZH: dict[str, str] = {
    "account.topup": "充值",
    "anomalies.set_thresholds": "设置异常线索阈值",
    "budget.set": "设置每月补贴预算",
    "canteen.add": "新增食堂",
    "canteen.configure": "设置食堂",
    "canteen.rename": "修改食堂名称",
    "consent.record": "登记人脸授权",
    "console.export": "导出报表",
    "console.login": "登录管理后台",
    "console.login_backoff": "登录失败过多，暂停登录",
    "console.logout": "退出管理后台",
    "district.flag": "标记超限订单",
    "enroll.duplicate_override": "确认不是同一人（重复人脸）",
    "enroll.templates": "采集人脸",
    "face.misidentified": "人脸认错",
    "face.template_refresh": "更新人脸模板",
    "offline.block": "挂失（断网时也拒绝）",
    "offline.set": "设置断网时的限额",
    "offline.unblock": "解除挂失",
    "faces.erase_bulk": "批量删除人脸数据",
    "import.menu": "导入菜单",
    "import.policy": "导入补贴政策",
    "import.roster": "导入花名册",
    "liveness.failed": "活体检测未通过",
    "meal.book": "报餐",
    "meal.cancel": "报停",
    "meal.import": "导入报餐单",
    "order.void": "作废订单",
    "orders.export": "导出订单",
    "quarantine.accept": "认可待核查记录",
    "quarantine.reject": "驳回待核查记录",
    "reconcile.accept": "对账认可",
    "reconcile.charge_back": "追回补贴",
    "report.bookings": "导出报餐统计",
    "report.daily": "导出每日销售",
    "report.monthly": "导出月度补贴结算表",
    "report.proof_of_life": "导出高龄津贴核验表",
    "report.welfare": "导出关爱巡访名单",
    "resident.erase_faces": "删除人脸数据",
    "staff.add": "新增工作人员",
    "staff.called": "呼叫工作人员",
    "staff.canteen_add": "指派工作人员到食堂",
    "staff.canteen_remove": "取消工作人员的食堂",
    "staff.deactivate": "停用工作人员",
    "staff.login": "工作人员登录",
    "staff.password_set": "设置密码",
    "staff.pin_locked": "PIN 错误过多被锁定",
    "staff.pin_rehash": "更新 PIN 的存储方式",
    "staff.pin_wrong": "PIN 输入错误",
    "staff.update": "修改工作人员",
    "store.restore": "恢复数据",
    "templates.reembed": "重新计算人脸模板",
    "terminal.add": "添加终端",
    "terminal.revoke": "停用终端",
    "welfare.set_days": "设置关爱巡访天数",
    "welfare.visited": "记录巡访",
}
# a code not listed above (a newer kind) is named by its first part
PREFIX_ZH = {"account": "账户", "anomalies": "异常线索", "canteen": "食堂", "consent": "人脸授权", "console": "管理后台",
             "district": "区服务器", "enroll": "人脸采集", "face": "人脸", "faces": "人脸数据", "import": "导入",
             "limits": "离线限额", "liveness": "活体检测", "meal": "报餐", "order": "订单", "orders": "订单",
             "quarantine": "待核查", "reconcile": "对账", "report": "报表", "resident": "居民", "staff": "工作人员",
             "store": "数据", "templates": "人脸模板", "terminal": "终端", "welfare": "关爱巡访",
             "blocklist": "停用名单", "status": "居民状态"}

FIELD_ZH: dict[str, str] = {
    "resident_id": "居民", "order_id": "订单", "order_ids": "订单", "over_fen": "金额", "amount_fen": "金额",
    "old_fen": "原值", "new_fen": "新值", "kind": "类型", "group": "类别", "note": "说明", "previous": "原决定",
    "format": "格式", "title": "报表", "old": "原值", "new": "新值", "canteen_id": "食堂", "terminal_id": "终端",
    "name": "名称", "district": "所属区", "role": "角色", "reason": "原因", "source": "来源", "given_by": "授权人",
    "text_version": "授权书版本", "allows_crop": "保存人脸截图", "score": "相似度", "failures": "连续错误次数",
    "report": "报表", "reported_by": "终端上的操作人", "at_terminal": "终端上的时间", "method": "方式",
    "payer": "付款人", "flags": "超限标记", "residents": "居民", "windows": "供餐时间", "key": "标识",
    "client": "来源地址", "count": "数量", "rows": "行数", "added": "新增", "changed": "修改", "file": "文件",
    "sha256": "校验值", "month": "月份", "date": "日期", "meal": "餐次", "days": "天数", "via": "途径",
    "created": "新增", "updated": "修改", "unchanged": "未变", "skipped_rows": "跳过的行", "canteens": "食堂",
    "version": "版本", "replaces": "取代",
}
VALUE_ZH: dict[str, str] = {
    "self": "本人", "guardian": "监护人", "desk": "登记台", "roster": "花名册", "kiosk": "自助终端", "xlsx": "Excel",
    "pdf": "PDF", "csv": "CSV", "accept": "认可", "charge_back": "追回", "reject": "驳回",
    "daily_meals": "超过每日补贴次数", "monthly_amount": "超过每月补贴额度", "balance": "余额透支",
    "resident_status": "状态日期后就餐", "subsidy_excess": "超出补贴", "balance_overdraft": "余额透支",
    "admin": "管理员", "supervisor": "主管", "staff": "工作人员", "cash": "现金", "card": "刷卡", "face": "刷脸",
    "phone": "手机号", "retention review": "保留期审查", "console": "管理后台", "cli": "命令行",
}
COUNTED = ("created", "updated", "unchanged", "skipped_rows")     # lists shown by their length
SYSTEM_ZH = {"system": "系统", "kiosk": "自助终端", "cli": "命令行"}

# one sentence per kind of entry; {who} is the actor, {subject} the subject, other names the detail's
# fields rendered (money in yuan, times in China time); a field the entry lacks reads "—"
SENTENCES: dict[str, str] = {
    "account.topup": "{who}为{subject}充值 {amount_fen}",
    "anomalies.set_thresholds": "{who}修改了{subject}的异常线索阈值：{new}",
    "budget.set": "{who}把{subject}的每月补贴预算从 {old_fen} 改为 {new_fen}",
    "canteen.add": "{who}新增食堂 {subject}（{name}）",
    "canteen.rename": "{who}把食堂 {subject} 的名称从「{old}」改为「{new}」",
    "consent.record": "{who}登记了{subject}的人脸授权（授权人：{given_by}，来源：{source}）",
    "console.export": "{who}导出了报表《{title}》（{format}）",
    "console.login": "{who}登录了管理后台",
    "console.logout": "{who}退出了管理后台",
    "enroll.templates": "{who}为{subject}采集了人脸",
    "faces.erase_bulk": "{who}批量删除了 {residents} 的人脸数据（{reason}）",
    "import.menu": "{who}导入了菜单{subject}：新增 {created} 项，修改 {updated} 项（{via}）",
    "import.policy": "{who}导入了补贴政策 {subject}第 {version} 版（{via}）",
    "import.roster": "{who}导入了花名册{subject}：新增 {created} 人，修改 {updated} 人，未变 {unchanged} 人（{via}）",
    "offline.block": "{who}挂失了 {value}（{reason}），各终端下次同步后拒绝",
    "offline.set": "{who}修改了断网时的限额：{new}",
    "offline.unblock": "{who}解除了 {value} 的挂失",
    "order.void": "{who}作废了订单 {subject}",
    "quarantine.accept": "{who}认可了终端 {terminal_id} 上传的记录 {subject}（{reason}）",
    "quarantine.reject": "{who}驳回了终端 {terminal_id} 上传的记录 {subject}（{reason}）",
    "reconcile.accept": "{who}认可了{resident_id}的对账记录 {over_fen}（{kind}）",
    "reconcile.charge_back": "{who}决定追回{resident_id}超出的补贴 {over_fen}（{kind}）",
    "resident.erase_faces": "{who}删除了{subject}的人脸数据",
    "staff.password_set": "{who}设置了{subject}的管理后台密码",
    "terminal.add": "{who}添加了{canteen_id}的终端 {subject}",
    "terminal.revoke": "{who}停用了终端 {subject}",
    "welfare.set_days": "{who}把{subject}的关爱巡访天数从 {old} 改为 {new}",
    "welfare.visited": "{who}巡访了{subject}：{note}",
}


def action_zh(code: str | None) -> str:
    """The action's Chinese name (a code not listed: its first part's name and the code)."""
    code = code or ""
    if code in ACTION_ZH:
        return ACTION_ZH[code]
    head = code.split(".", 1)[0]
    return f"{PREFIX_ZH[head]}（{code}）" if head in PREFIX_ZH else code


@dataclass
class Names:
    """Who the ids are: staff (id -> name), residents (id -> name), canteens (id -> name),
    terminals (id -> how the console names it)."""
    staff: dict[str, str]
    residents: dict[str, str]
    canteens: dict[str, str]
    terminals: dict[str, str] = field(default_factory=dict)


def who_zh(actor: str | None, names: Names, detail: dict | None = None) -> str:
    actor = actor or ""
    if actor.startswith("terminal:"):
        by = (detail or {}).get("reported_by")
        tid = actor[9:]
        return f"终端 {names.terminals.get(tid, tid)}" + (f"（上报的操作人 {_person(str(by), names)}）" if by else "")
    if actor in SYSTEM_ZH:
        return SYSTEM_ZH[actor]
    return _person(actor, names)


def _person(staff_id: str, names: Names) -> str:
    if staff_id in SYSTEM_ZH:
        return SYSTEM_ZH[staff_id]
    n = names.staff.get(staff_id)
    return f"{n}（{staff_id}）" if n else staff_id


def _time(text: str) -> str | None:
    """An ISO time with a zone, in China time; None if ``text`` is not one."""
    if not isinstance(text, str) or len(text) < 19 or text[4:5] != "-" or "T" not in text:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return to_cst(t).strftime("%Y-%m-%d %H:%M:%S") if t.tzinfo else None


def value_zh(key: str, value: object, names: Names) -> str:
    """A detail's value in words: fen as yuan, times in China time, ids with names, codes in Chinese."""
    if value is None:
        return "未设置" if key.endswith("_fen") else "—"
    if key.endswith("_fen") and isinstance(value, int) and not isinstance(value, bool):
        return f"{fen_to_yuan(value)} 元"
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, (list, dict)) and key in COUNTED:
        return str(len(value))
    if isinstance(value, list):
        if key in ("order_ids", "flags") or all(isinstance(x, str) and len(x) == 36 for x in value):
            return f"{len(value)} 笔" if value else "无"
        shown = [value_zh(key, x, names) for x in value[:10]]
        return "、".join(shown) + (f" 等 {len(value)} 项" if len(value) > 10 else "")
    if isinstance(value, dict):
        return "，".join(f"{FIELD_ZH.get(k, k)} {value_zh(k, v, names)}" for k, v in value.items())
    if isinstance(value, str):
        t = _time(value)
        if t:
            return t
        if key in ("resident_id", "residents") and value in names.residents:
            return f"{names.residents[value]}（{value}）"
        if key == "canteen_id" and value in names.canteens:
            return names.canteens[value]
        if key == "terminal_id" and value in names.terminals:
            return names.terminals[value]
        if key in ("reported_by", "staff_id"):
            return _person(value, names)
        if key == "order_id" and len(value) == 36:
            return value[:8]
        return VALUE_ZH.get(value, value)
    return str(value)


class _Fields(dict):
    def __missing__(self, key: str) -> str:
        return "—"


def describe(action: str, actor: str | None, subject: str | None, detail: dict | None, names: Names) -> str:
    """One sentence in Chinese saying what the entry records."""
    detail = detail or {}
    who = who_zh(actor, names, detail)
    subj = value_zh("resident_id", subject, names) if subject else ""
    if subject and action.startswith("canteen."):
        subj = names.canteens.get(subject, subject)
    elif subject and action.startswith("staff."):
        subj = _person(subject, names)
    elif subject and action.startswith("import."):
        subj = "「" + subject.replace("\\", "/").rsplit("/", 1)[-1] + "」"
    fields = _Fields({k: value_zh(k, v, names) for k, v in detail.items()})
    fields.update(who=who, subject=subj or "—")
    template = SENTENCES.get(action)
    if template is not None:
        text = template.format_map(fields)
        used = {n for n in detail if "{" + n + "}" in template}
        if detail.get("note") and "note" not in used:
            text += f"，说明：{fields['note']}"
        return text + "。"
    rest = [f"{FIELD_ZH.get(k, k)} {fields[k]}" for k, v in detail.items()
            if k not in ("reported_by",) and v not in (None, "", [], {})]
    text = f"{who}{action_zh(action)}" + (f"：{subj}" if subj else "")
    return text + ("；" + "，".join(rest) if rest else "") + "。"


def raw_detail(detail: dict | None) -> str:
    return json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else ""
