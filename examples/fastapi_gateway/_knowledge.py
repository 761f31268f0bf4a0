"""In-memory knowledge bases that the example uses in place of a vector store."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass

_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Passage:
    """One retrievable text with the keywords it is found by."""

    id: str
    text: str
    keywords: frozenset[str]


class KnowledgeBase:
    """Keyword search over a fixed list of passages.

    Args:
        name: Name of the knowledge base, used as a span attribute.
        passages: The searchable passages.
        lookup_seconds: Simulated round trip to a remote store, in seconds.
    """

    def __init__(
        self, name: str, passages: Iterable[Passage], lookup_seconds: float = 0.004
    ) -> None:
        self.name = name
        self.passages = tuple(passages)
        self.lookup_seconds = lookup_seconds

    async def search(self, query: str, limit: int = 2) -> list[Passage]:
        """Return up to ``limit`` passages sharing the most keywords with ``query``.

        Passages without a shared keyword are never returned. Ties keep the
        order of the knowledge base.
        """
        await asyncio.sleep(self.lookup_seconds)
        words = set(_WORD.findall(query.lower()))
        scored = [
            (len(passage.keywords & words), index, passage)
            for index, passage in enumerate(self.passages)
        ]
        matches = [entry for entry in scored if entry[0] > 0]
        matches.sort(key=lambda entry: (-entry[0], entry[1]))
        return [passage for _, _, passage in matches[:limit]]


def _passage(passage_id: str, text: str, keywords: str) -> Passage:
    return Passage(passage_id, text, frozenset(keywords.split()))


PRODUCT_HELP = KnowledgeBase(
    "product_help",
    [
        _passage(
            "billing-1",
            "Invoices are issued on the first day of each month and can be "
            "downloaded from Settings > Billing.",
            "invoice invoices billing bill payment download month",
        ),
        _passage(
            "billing-2",
            "Plans can be upgraded at any time; the price difference is prorated "
            "to the day.",
            "plan plans upgrade downgrade price pricing prorated tier",
        ),
        _passage(
            "account-1",
            "Passwords are reset from the sign-in page with the 'Forgot password' "
            "link; the link in the e-mail is valid for 30 minutes.",
            "password reset login sign account email locked",
        ),
        _passage(
            "export-1",
            "Reports export to CSV or PDF from the Reports page; exports of more "
            "than 10,000 rows are sent by e-mail.",
            "export report reports csv pdf download rows data",
        ),
        _passage(
            "api-1",
            "API keys are created under Settings > API and can be limited to "
            "read-only scopes.",
            "api key keys token integration scope scopes developer",
        ),
        _passage(
            "team-1",
            "Admins invite teammates from Settings > Team; each seat is billed "
            "from the day it is added.",
            "team invite teammate teammates seat seats admin user users",
        ),
    ],
)

NUTRITION_FACTS = KnowledgeBase(
    "nutrition_facts",
    [
        _passage(
            "protein-1",
            "Adults need about 0.8 g of protein per kg of body weight a day; "
            "athletes often aim for 1.2 to 2.0 g per kg.",
            "protein muscle weight athlete athletes gram grams daily",
        ),
        _passage(
            "fiber-1",
            "Guidelines recommend 25 to 38 g of fiber a day, from whole grains, "
            "legumes, fruit and vegetables.",
            "fiber fibre grains legumes beans vegetables fruit digestion",
        ),
        _passage(
            "hydration-1",
            "Most adults need 2 to 3 litres of fluid a day, more in heat or during "
            "exercise.",
            "water hydration drink fluid litres thirst exercise",
        ),
        _passage(
            "sugar-1",
            "The WHO advises keeping free sugars below 10% of daily energy, "
            "ideally below 5%.",
            "sugar sugars sweet soda dessert energy calories",
        ),
        _passage(
            "breakfast-1",
            "A breakfast with protein and fiber, such as oats with yogurt, keeps "
            "people full for longer.",
            "breakfast morning oats yogurt eggs meal full",
        ),
        _passage(
            "snack-1",
            "Nuts, fruit and plain yogurt are snacks with fiber or protein and "
            "little added sugar.",
            "snack snacks nuts afternoon hungry evening",
        ),
    ],
)
