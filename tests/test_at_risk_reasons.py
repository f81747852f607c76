"""The at-risk list shows a reason only where it explains a raised risk: a customer listed
for their value whose risk is below the typical customer's gets no "keeps it low" reason
as their top reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.small_crm import ChatBot


def test_the_at_risk_list_never_gives_a_reason_that_keeps_the_risk_low(
    sample_company: Any, tmp_path: Path
) -> None:
    bot = ChatBot(sample_company.engine, sample_company.settings, tmp_path)
    typical = sample_company.run.metrics["churn"]["typical_risk"]
    reply = bot.reply("at-risk 40", user="UADMIN")
    assert reply.table is not None
    below = 0
    for row in reply.table.rows:
        cells = dict(zip(reply.table.columns, row, strict=True))
        risk = float(cells["Churn"].rstrip("%")) / 100
        if risk < typical - 0.005:
            assert cells["Top reason"] == "risk below typical; listed for its value", cells
            below += 1
        elif risk > typical + 0.005:
            assert cells["Top reason"] != "risk below typical; listed for its value", cells
    assert below > 0
