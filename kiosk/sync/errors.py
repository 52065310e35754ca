"""Errors of the district (server, terminal, sync)."""
from __future__ import annotations

from ..errors import DistrictError, ServerOnlyError  # noqa: F401 (defined below the store)


class ServerUnreachableError(DistrictError):
    default_user_message = "连不上区服务器（离线），本机照常售餐，订单会在恢复联网后自动上传"
    http_status = 503


class TerminalAuthError(DistrictError):
    default_user_message = "此终端的令牌无效或已被吊销，请联系区管理员"
    http_status = 401


class TerminalOnlyError(DistrictError):
    default_user_message = "这台机器不是区服务器的终端（未设置 KIOSK_SERVER_URL / KIOSK_SERVER_TOKEN）"
