"""Receipt printers. The kiosk works without one; FilePrinter writes text
receipts (tests, and sites that print from another machine)."""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

from kiosk.money import fen_to_yuan


class ReceiptPrinter(Protocol):
    def print_receipt(self, receipt) -> None: ...


def receipt_text(r, canteen: str = "长寿食堂") -> str:
    lines = [canteen, f"{r.meal_date} {r.meal}  {r.resident_name}", "-" * 24]
    lines += [f"{ln['name']} x{ln['quantity']}  {fen_to_yuan(ln['price_fen'] * ln['quantity'])}" for ln in r.lines]
    lines += ["-" * 24, f"合计 {fen_to_yuan(r.total_fen)}", f"补贴 {fen_to_yuan(r.subsidy_fen)}（{r.reason}）",
              f"实付 {fen_to_yuan(r.to_pay_fen)}  {r.pay_method}", f"余额 {fen_to_yuan(r.balance_after_fen)}",
              f"单号 {r.order_id}"]
    return "\n".join(lines) + "\n"


class FilePrinter:
    def __init__(self, folder: Path, canteen: str = "长寿食堂") -> None:
        self.folder, self.canteen = Path(folder), canteen

    def print_receipt(self, receipt) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"{receipt.order_id}.txt").write_text(receipt_text(receipt, self.canteen), encoding="utf-8")
