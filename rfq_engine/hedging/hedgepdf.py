"""The hedge file as a PDF (fpdf2): the same figures as ``hedgefile.build_hedge_file``, laid out
for a reader, the audit chain's head hash on the first and the last page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fpdf import FPDF

__all__ = ["hedge_file_pdf"]

_WIDTH = 180.0


def _text(value: Any) -> str:
    """Latin-1 text for the PDF's core fonts (a character outside it becomes ``?``)."""
    text = "-" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return text.encode("latin-1", "replace").decode("latin-1")


class _Doc:
    def __init__(self, title: str, head_hash: str) -> None:
        self.pdf = FPDF(orientation="portrait", unit="mm", format="A4")
        self.pdf.set_auto_page_break(auto=True, margin=15)
        self.pdf.set_title(title)
        self.pdf.set_creator("rfq-engine")
        self.head_hash = head_hash
        self.pdf.add_page()

    def heading(self, text: str, size: int = 12) -> None:
        self.pdf.ln(2)
        self.pdf.set_font("Helvetica", "B", size)
        self.pdf.cell(_WIDTH, 7, _text(text), new_x="LMARGIN", new_y="NEXT")

    def line(self, label: str, value: Any) -> None:
        self.pdf.set_font("Helvetica", "B", 9)
        self.pdf.cell(50, 5, _text(label))
        self.pdf.set_font("Helvetica", "", 9)
        self.pdf.multi_cell(_WIDTH - 50, 5, _text(value), align="L", new_x="LMARGIN", new_y="NEXT")

    def table(self, columns: Sequence[tuple[str, str, float]], rows: Sequence[Mapping[str, Any]],
              size: int = 8) -> None:
        self.pdf.set_font("Helvetica", "B", size)
        for _, title, width in columns:
            self.pdf.cell(width, 5, _text(title), border=1)
        self.pdf.ln()
        self.pdf.set_font("Helvetica", "", size)
        for row in rows:
            for key, _, width in columns:
                self.pdf.cell(width, 5, _text(row.get(key)), border=1)
            self.pdf.ln()
        if not rows:
            self.pdf.cell(_WIDTH, 5, "none", new_x="LMARGIN", new_y="NEXT")

    def chain(self) -> None:
        self.pdf.set_font("Courier", "", 8)
        self.pdf.cell(_WIDTH, 5, _text(f"audit chain head {self.head_hash}"),
                      new_x="LMARGIN", new_y="NEXT")


def hedge_file_pdf(hedge_file: Mapping[str, Any]) -> bytes:
    """The PDF's bytes."""
    chain = hedge_file["chain"]
    doc = _Doc(f"Hedge file {hedge_file['program']} {hedge_file['period']}", chain["head_hash"])
    doc.heading(f"Hedge file: program {hedge_file['program']}, period {hedge_file['period']}", 14)
    doc.line("as of", hedge_file["as_of"])
    doc.chain()

    designation = hedge_file["designation"]
    doc.heading("Designation")
    doc.line("objective", designation["objective"])
    doc.line("hedged item", designation["hedged_item"])
    doc.line("strategy", designation["strategy"])
    doc.line("instruments", ", ".join(designation["instruments"]) or "none traded")
    doc.line("hedge ratio", f"{designation['hedge_ratio']} (applied {designation['hedge_ratio_applied']})")
    doc.line("effectiveness method", designation["effectiveness_method"])

    doc.heading("Decisions")
    doc.table([("trigger", "trigger", 22), ("action", "action", 22), ("scheduled_for", "scheduled for", 46),
               ("target", "target", 30), ("held", "held", 30), ("spot", "spot", 30)],
              hedge_file["decisions"])

    doc.heading("Trades and their decision records")
    rows = []
    for trade in hedge_file["trades"]:
        record = trade["decision"]
        rows.append({**trade, "instruments": " / ".join(trade["instruments"]), "quotes": record.get("quotes"),
                     "winner": record.get("winner"), "cover": record.get("cover_price"),
                     "mandate": record.get("mandate")})
    doc.table([("rfq_id", "RFQ", 50), ("instruments", "instrument", 36), ("side", "side", 8),
               ("quantity", "quantity", 16), ("price", "price", 18), ("dealer", "dealer", 16),
               ("quotes", "quotes", 10), ("cover", "cover", 18), ("mandate", "rules", 8)], rows, size=7)

    tests = hedge_file["effectiveness"]
    doc.heading("Effectiveness")
    doc.table([("term", "critical term", 30), ("item", "hedged item", 45), ("hedge", "hedge", 45),
               ("match", "match", 15), ("note", "note", 45)], tests["critical_terms"])
    offset = tests["dollar_offset"]
    doc.line("dollar offset", f"hedge change {offset['hedge_change']} / item change {offset['item_change']}"
             f" = ratio {offset['ratio']} (band {offset['band'][0]} to {offset['band'][1]}; "
             f"effective {_text(offset['effective'])})")
    fit = tests["regression"]
    doc.line("regression", f"n {fit['n']}, slope {fit['slope']}, intercept {fit['intercept']}, "
             f"R^2 {fit['r_squared']}; effective {_text(fit['effective'])}")
    doc.table([("shock", "shock", 25), ("price", "price", 45), ("item_change", "item change", 55),
               ("hedge_change", "hedge change", 55)], fit["points"])

    production = hedge_file["production"]
    doc.heading("Production: realized against forecast")
    doc.line("unit", production["unit"])
    for key in ("forecast", "realized", "difference", "realized_over_forecast", "hedged",
                "hedge_ratio_on_forecast", "hedge_ratio_on_realized"):
        doc.line(key.replace("_", " "), production[key])
    record = production.get("realized_record")
    doc.line("realized source", production.get("source", "forecast") + (
        f" (recorded by {record['recorded_by']} at {record['recorded_at']}, event {record['seq']})"
        if record else ""))

    doc.heading("Provenance")
    doc.line("market as of", hedge_file["market"]["as_of"])
    doc.line("market price", hedge_file["market"]["price"])
    doc.line("audit chain head seq", chain["head_seq"])
    doc.chain()
    return bytes(doc.pdf.output())
