"""Replace personal data and credentials in text with typed placeholders.

``redact("mail jane@example.com or call 020 7946 0958")`` returns
``"mail [EMAIL] or call [PHONE]"``. Detection uses regular expressions from the
standard library, checked where possible by a checksum (Luhn for cards, ISO
13616 mod 97 for IBANs) or by the ``ipaddress`` module.

The rules run one after another, each on the output of the one before, in this
order:

1. ``[TOKEN]``: JSON Web Tokens, then the credentials of ``Bearer`` and
   ``Basic`` authorization headers. JWTs go first so that no other rule takes
   part of one.
2. ``[API_KEY]``: provider keys recognized by their prefix (``sk-``, ``AKIA``,
   ``ghp_``, ...).
3. ``[TOKEN]`` for assignments such as ``access_token=...``, then ``[API_KEY]``
   for assignments such as ``api_key=...``. They come after the prefixed keys,
   which they would otherwise label by the variable name.
4. The caller's extra patterns, in the order given. They run before the
   personal-data rules so that they can claim digits that a number rule would
   otherwise take.
5. ``[EMAIL]``, before the number rules, which would otherwise take digits in
   the local part.
6. ``[IBAN]``, before cards and phones, which would otherwise take the digits
   of the account number.
7. ``[CARD]``, only when the Luhn check and a card network's prefix and length
   match.
8. ``[IP]``: IPv6, then IPv4.
9. ``[PHONE]``, last because it is the loosest rule.

Placeholders contain no digit, ``@`` or dot, so no later built-in rule matches
one.

A dotted quad such as ``1.2.3.4`` is both a valid IPv4 address and a plausible
version number. It is redacted as an IP unless a version word (``version``,
``build``, ``release``, ``==``, ...) directly precedes it or a letter is
attached to it (``v1.2.3.4``). Most four-part versions in practice have a
component above 255 (``10.0.19041.1``) and are never candidates.

Every built-in pattern starts at a token boundary and uses bounded or
possessive quantifiers, to avoid catastrophic backtracking.
``benchmarks/redaction_quality.py`` times 100 KB inputs built to provoke it.
Input past ``max_chars`` characters (100,000 by default) is dropped and
replaced by ``[TRUNCATED]``, which bounds the time and memory of one call.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from llmobs_core._ratelimit import RateLimitedWarning

__all__ = [
    "DEFAULT_MAX_CHARS",
    "TRUNCATION_MARKER",
    "RedactionPattern",
    "Redactor",
    "redact",
]

logger = logging.getLogger(__name__)
_validator_warnings = RateLimitedWarning(logger)

DEFAULT_MAX_CHARS = 100_000
TRUNCATION_MARKER = "[TRUNCATED]"

_Span = tuple[int, int]
_Locator = Callable[[re.Match[str]], _Span | None]


@dataclass(frozen=True, slots=True)
class RedactionPattern:
    """User-defined detector and the label of its placeholder.

    Args:
        label: Placeholder name: a match becomes ``[label]``. ASCII letters,
            digits and underscores, starting with a letter.
        pattern: Regular expression, as text or compiled. If it has a group
            named ``value``, only that group is replaced, so
            ``r"customer=(?P<value>[0-9]+)"`` keeps the ``customer=`` prefix.
        validator: Function called with the text about to be replaced. The
            text is kept when it returns false. A validator that raises an
            exception counts as a match, so a failing check does not leak text.

    The pattern runs on Python's backtracking ``re`` engine like the built-in
    ones, so a pattern with nested quantifiers can make every call slow.
    """

    label: str
    pattern: str | re.Pattern[str]
    validator: Callable[[str], bool] | None = None


@dataclass(frozen=True, slots=True)
class _Rule:
    """Compiled detector and the label of its placeholder.

    ``regex`` finds candidates, and ``locate`` returns the span to replace in
    each candidate, or None to keep it. ``precondition`` is a fast test that
    every match needs, such as an ``@`` for e-mail addresses. Most patterns
    start with a look-behind, which keeps ``re`` from scanning quickly for a
    literal, so skipping a rule saves most of its time.
    """

    label: str
    regex: re.Pattern[str]
    locate: _Locator
    precondition: Callable[[str], object] | None = None

    def apply(self, text: str) -> str:
        """Return ``text`` with every located span replaced by the placeholder."""
        if self.precondition is not None and not self.precondition(text):
            return text
        placeholder = f"[{self.label}]"
        pieces: list[str] = []
        copied = 0
        position = 0
        while (match := self.regex.search(text, position)) is not None:
            span = self.locate(match)
            # An extra pattern's value group can lie in a look-behind, before
            # text already copied, so such a span is skipped like a rejection.
            if span is None or not copied <= span[0] < span[1]:
                # A shorter candidate may start inside a rejected one.
                position = match.start() + 1
                continue
            pieces += (text[copied : span[0]], placeholder)
            copied = position = span[1]
        pieces.append(text[copied:])
        return "".join(pieces)


def _contains(*needles: str) -> Callable[[str], bool]:
    """Build a precondition: the text contains one of ``needles``."""

    def test(text: str) -> bool:
        return any(needle in text for needle in needles)

    return test


def _contains_casefolded(*needles: str) -> Callable[[str], bool]:
    """Build a precondition for case-insensitive patterns.

    Case folding maps the characters that ``re.IGNORECASE`` also matches,
    such as the Kelvin sign for ``k``, to the lowercase ``needles``.
    """

    def test(text: str) -> bool:
        folded = text.casefold()
        return any(needle in folded for needle in needles)

    return test


_has_digit = re.compile(r"[0-9]").search


def _value_span(match: re.Match[str]) -> _Span | None:
    """Return the span of the group named ``value``, or of the whole match."""
    group = "value" if "value" in match.re.groupindex else 0
    start, end = match.span(group)
    return None if start < 0 else (start, end)


def _checked(check: Callable[[str], bool]) -> _Locator:
    """Build a locator that keeps the value span only when ``check`` passes."""

    def locate(match: re.Match[str]) -> _Span | None:
        span = _value_span(match)
        if span is None or not check(match.string[span[0] : span[1]]):
            return None
        return span

    return locate


# ---------------------------------------------------------------- credentials

_JWT = re.compile(
    r"(?<![A-Za-z0-9_.-])eyJ[A-Za-z0-9_-]{5,}+\.[A-Za-z0-9_-]{5,}+"
    r"(?:\.[A-Za-z0-9_-]*+){1,3}+"
)
_BEARER = re.compile(
    r"(?i:\bbearer)[ \t]+(?P<value>[A-Za-z0-9._~+/-]{8,}+=*+)(?![A-Za-z0-9_])"
)
_BASIC = re.compile(r"(?i:\bbasic)[ \t]+(?P<value>[A-Za-z0-9+/]{6,}+={0,2}+)")
_ASSIGNMENT_VALUE = (
    r"(?![A-Za-z0-9])[\"']?[ \t]*[:=][ \t]*[\"']?"
    r"(?P<value>[A-Za-z0-9._~+/-]{8,}+=*+)"
)
_TOKEN_ASSIGNMENT = re.compile(
    r"(?i)(?<![A-Za-z0-9])"
    r"(?:(?:access|auth|refresh|id|session|api|bearer|csrf|oauth)[_-]?)?token"
    + _ASSIGNMENT_VALUE
)
_KEY_ASSIGNMENT = re.compile(
    r"(?i)(?<![A-Za-z0-9])"
    r"(?:api[_-]?(?:key|secret)|apikey|secret(?:[_-]?(?:access[_-]?)?key)?"
    r"|client[_-]?secret|app[_-]?secret|access[_-]?key(?:[_-]?id)?)" + _ASSIGNMENT_VALUE
)
# OpenAI (sk-, sk-proj-, sk-svcacct-) and Anthropic (sk-ant-) keys share the
# sk- prefix. The digit look-ahead keeps hyphenated words such as
# sk-learn-style-estimators out.
_PROVIDER_KEY = re.compile(
    r"(?<![A-Za-z0-9_-])(?:"
    r"sk-(?=[A-Za-z0-9_-]*?[0-9])[A-Za-z0-9_-]{20,}+"
    r"|[rs]k_(?:live|test)_[A-Za-z0-9]{16,}+"
    r"|A(?:KIA|SIA)[A-Z0-9]{16}(?![A-Za-z0-9])"
    r"|gh[opsur]_[A-Za-z0-9]{30,}+"
    r"|github_pat_[A-Za-z0-9_]{30,}+"
    r"|xox[abpr]-[A-Za-z0-9-]{10,}+"
    r"|AIza[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])"
    r")"
)


def _has_letter_and_digit(value: str) -> bool:
    """Return whether ``value`` mixes letters and digits, as generated secrets do."""
    return any(char.isdigit() for char in value) and any(
        char.isalpha() for char in value
    )


def _is_bearer_token(value: str) -> bool:
    """Return whether a word after ``Bearer`` looks generated, not English."""
    if any(char.isdigit() for char in value):
        return True
    mixed_case = any(char.isupper() for char in value) and any(
        char.islower() for char in value
    )
    return len(value) >= 20 and mixed_case


def _is_basic_credential(value: str) -> bool:
    """Return whether ``value`` is base64 of a printable ``user:password``."""
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    return ":" in decoded and decoded.isprintable()


# Provider keys go before the assignment rules, so that GITHUB_TOKEN=ghp_...
# is labeled by its key prefix rather than by the variable name.
_CREDENTIAL_RULES = (
    _Rule("TOKEN", _JWT, _value_span, _contains("eyJ")),
    _Rule(
        "TOKEN",
        _BEARER,
        _checked(_is_bearer_token),
        _contains_casefolded("bearer"),
    ),
    _Rule(
        "TOKEN",
        _BASIC,
        _checked(_is_basic_credential),
        _contains_casefolded("basic"),
    ),
    _Rule("API_KEY", _PROVIDER_KEY, _value_span),
    _Rule(
        "TOKEN",
        _TOKEN_ASSIGNMENT,
        _checked(_has_letter_and_digit),
        _contains_casefolded("token"),
    ),
    _Rule(
        "API_KEY",
        _KEY_ASSIGNMENT,
        _checked(_has_letter_and_digit),
        _contains_casefolded("key", "secret"),
    ),
)

# ---------------------------------------------------------------- e-mail, IBAN

# The local part is at most 64 characters (RFC 5321). A colon with a path
# after the domain marks an scp-style Git remote such as git@host:org/repo.
_EMAIL = re.compile(
    r"(?<![\w.%+-])[\w.%+-]{1,64}+@(?:[^\W_][\w-]{0,62}+\.){1,8}[^\W\d_]{2,63}+"
    r"(?![\w-]|:[\w~/.])"
)

_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}(?:[ -]?[A-Za-z0-9]){11,30}+")

# IBAN length per country code, from the SWIFT IBAN registry (ISO 13616).
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16,
    "BG": 22, "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22,
    "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20,
    "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22,
    "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21,
    "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30,
    "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26,
    "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip

# The registry's example BBANs have 10 or more digits, and English words none.
_MIN_BBAN_DIGITS = 8


def _locate_iban(match: re.Match[str]) -> _Span | None:
    """Return the span of the IBAN at the start of ``match``, if valid.

    The candidate may run on into the following words, so the IBAN is cut at
    its country's registered length, which must end at a separator.
    """
    candidate = match.group()
    length = _IBAN_LENGTHS.get(candidate[:2].upper())
    if length is None:
        return None
    offsets = [index for index, char in enumerate(candidate) if char.isalnum()]
    if len(offsets) < length:
        return None
    end = offsets[length - 1] + 1
    if end < len(candidate) and candidate[end] not in " -":
        return None
    iban = "".join(candidate[index] for index in offsets[:length])
    if not _is_iban(iban):
        return None
    return match.start(), match.start() + end


def _is_iban(iban: str) -> bool:
    """Return whether a compact IBAN passes the format and mod-97 checks."""
    bban = iban[4:]
    if not (iban.isupper() or iban.islower()):
        return False
    if sum(char.isdigit() for char in bban) < _MIN_BBAN_DIGITS:
        return False
    rearranged = bban + iban[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


# ---------------------------------------------------------------- cards

# The number rules (card, IP, phone) use ASCII word boundaries, so that a
# number written right after Chinese or Japanese text is still found.

# Either 13 to 19 digits in a row, or 3 to 5 groups of 3 to 6 digits separated
# by a space, dot or dash, as cards are printed (4-4-4-4, 4-6-5, 4-4-4-4-3).
# A sixth such group makes the whole run a number table, not a card.
_CARD = re.compile(
    r"(?<![A-Za-z0-9_+.,-])[2-6][0-9]{3}"
    r"(?:[0-9]{9,15}+|(?:[ .-][0-9]{3,6}+){2,4}+(?![ .-][0-9]{3}))"
    r"(?![0-9]|[.,][0-9])"
)
_DIGIT_RUN = re.compile(r"[0-9]+")
# Luhn doubles every second digit from the right and adds the digits of the
# product: 7 becomes 14, then 1 + 4 = 5.
_LUHN_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)

# (first four digits from, to, minimum length, maximum length) per network:
# Mir, Mastercard 2-series, Diners, Amex, JCB, Diners, Amex, Diners, Visa,
# Maestro, Mastercard, and Maestro, Discover and UnionPay.
_CARD_RANGES = (
    (2200, 2204, 16, 19),
    (2221, 2720, 16, 16),
    (3000, 3059, 14, 19),
    (3400, 3499, 15, 15),
    (3528, 3589, 16, 19),
    (3600, 3699, 14, 19),
    (3700, 3799, 15, 15),
    (3800, 3999, 14, 19),
    (4000, 4999, 13, 19),
    (5000, 5099, 13, 19),
    (5100, 5599, 16, 16),
    (5600, 6999, 13, 19),
)


def _locate_card(match: re.Match[str]) -> _Span | None:
    """Return the span of a valid card number in ``match``.

    A card number is often followed by a CVV and sometimes preceded by
    another number, so the candidate without its last or first group is
    tried too.
    """
    groups = list(_DIGIT_RUN.finditer(match.group()))
    count = len(groups)
    for first, last in ((0, count), (0, count - 1), (1, count)):
        if last - first < 1:
            continue
        digits = "".join(group.group() for group in groups[first:last])
        if _is_card_number(digits):
            start = match.start()
            return start + groups[first].start(), start + groups[last - 1].end()
    return None


def _is_card_number(digits: str) -> bool:
    """Check a card network's prefix and length, then the Luhn checksum."""
    prefix = int(digits[:4])
    if not any(
        low <= prefix <= high and shortest <= len(digits) <= longest
        for low, high, shortest, longest in _CARD_RANGES
    ):
        return False
    kept = sum(int(char) for char in digits[-1::-2])
    doubled = sum(_LUHN_DOUBLED[int(char)] for char in digits[-2::-2])
    return (kept + doubled) % 10 == 0


# ---------------------------------------------------------------- IP addresses

_IPV6 = re.compile(
    r"(?<![A-Za-z0-9_:.])(?:[0-9A-Fa-f]{1,4}+|(?=::))(?::[0-9A-Fa-f]{0,4}+){2,7}+"
    r"(?:\.[0-9]{1,3}+){0,3}+(?![A-Za-z0-9_:])"
)
_IPV4 = re.compile(
    r"(?<![A-Za-z0-9_.])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![A-Za-z0-9_]|\.[0-9])"
)
_VERSION_BEFORE = re.compile(
    r"(?i)(?:\bversion|\bver\.?|\bbuild|\brelease|\bfirmware|\bkernel|\bsection"
    r"|\bchapter|\bstep|§|[=<>~!]=)[ \t]*:?[ \t]*$"
)


def _locate_ipv6(match: re.Match[str]) -> _Span | None:
    """Return the match span when it is an IPv6 address with a digit in it.

    The digit requirement keeps C++ scopes (``a::b``) and MAC-like words out.
    """
    candidate = match.group()
    if not any(char.isdigit() for char in candidate):
        return None
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return None
    return match.span()


def _locate_ipv4(match: re.Match[str]) -> _Span | None:
    """Return the match span when it is an IPv4 address, not a version."""
    try:
        ipaddress.IPv4Address(match.group())
    except ValueError:
        return None
    before = match.string[max(0, match.start() - 16) : match.start()]
    if _VERSION_BEFORE.search(before):
        return None
    return match.span()


# ---------------------------------------------------------------- phones

# A chain of up to 8 digit groups joined by one space, dot, dash or slash, or
# by a parenthesized group such as the UK trunk prefix in +44 (0)20. Longer
# chains are number tables, not phone numbers, and are rejected whole.
_PHONE = re.compile(
    r"(?<![A-Za-z0-9_+.,/#$€£¥%@-])\+?(?:\(\+?[0-9]{1,5}\)|[0-9]{1,15}+)"
    r"(?:(?: ?\([0-9]{1,5}\) ?|[ ./-])[0-9]{1,15}+){0,7}+"
    r"(?![0-9]|[ ./-][0-9])"
)
# North American numbers: (555) 123-4567, 555-123-4567, 1-800-555-0199.
_NANP = re.compile(
    r"(?:1[ .-]?)?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .-]?)[0-9]{3}[ .-][0-9]{4}"
)
# National numbers with a trunk 0, one separator kind throughout: UK
# 020 7946 0958, German 030/12345678, French 06.12.34.56.78, (030) 1234567.
_NATIONAL = re.compile(
    r"0[1-9][0-9]{0,3}(?P<sep>[ ./-])[0-9]{2,8}(?:(?P=sep)[0-9]{2,8}){0,4}"
    r"|\(0[1-9][0-9]{0,3}\) ?[0-9]{2,8}(?:[ -][0-9]{2,8}){0,3}"
)
_DATE_START = re.compile(
    r"(?:(?:0?[1-9]|[12][0-9]|3[01])[./-](?:0?[1-9]|1[0-2])[./-](?:[0-9]{4}|[0-9]{2})"
    r"|[0-9]{4}[./-](?:0?[1-9]|1[0-2])[./-](?:0?[1-9]|[12][0-9]|3[01]))"
    r"(?![0-9]|[./-][0-9])"
)
# Words before a phone number, in English, German, French, Spanish, Italian,
# Portuguese, Japanese and Chinese. Most may take a suffix (phones,
# Telefonnummer), but tel, call and dial must end there (not telegram, called).
_PHONE_WORD = re.compile(
    r"(?i)\b(?:phone|mobile|cell|fax|whats ?app|sms|telefon|handy|rufnummer"
    r"|t[ée]l[ée]phone|portable|tel[ée]fono|m[óo]vil|celular|telefone|cellulare"
    r"|(?:tel|call|dial)\b|(?:text|ring|reach|contact) (?:me|us)\b"
    r"|chiamami|ll[áa]mame|appelez"
    r"|(?:my|mi|mein|meine|mon|il mio) (?:number|n[úu]mero|nummer|num[ée]ro))"
    r"|電話|携帯|手机|电话"
)
_NOT_PHONE_WORD = re.compile(
    r"(?i)\b(?:order|invoice|ticket|ref|reference|tracking|sku|serial|account"
    r"|acct|case|transaction|txn|item|part|model|isbn)"
    r"(?:[ \t]*(?:no\.?|number|nr\.?|num\.?|id|#))?[ \t:#.=-]*$"
)
_CONTEXT_CHARS = 40
_MIN_PHONE_DIGITS = 7  # a local number without its area code


class _PhoneContext(Enum):
    """Words before a number that make it more or less likely a phone."""

    NONE = "none"
    PHONE_WORD = "phone word"
    OTHER_NUMBER_WORD = "other number word"


def _phone_context(text: str, start: int) -> _PhoneContext:
    """Classify the words just before ``start``."""
    before = text[max(0, start - _CONTEXT_CHARS) : start]
    if _PHONE_WORD.search(before):
        return _PhoneContext.PHONE_WORD
    if _NOT_PHONE_WORD.search(before):
        return _PhoneContext.OTHER_NUMBER_WORD
    return _PhoneContext.NONE


def _locate_phone(match: re.Match[str]) -> _Span | None:
    """Return the span of the longest phone number at the start of ``match``.

    Trailing groups are dropped one at a time, so that a phone number
    followed by another number (``555-123-4567 2 lines``) is still found.
    """
    chain = match.group()
    if sum(char.isdigit() for char in chain) < _MIN_PHONE_DIGITS:
        return None
    if _DATE_START.match(chain):
        return None
    context = _phone_context(match.string, match.start())
    if not _may_be_phone(chain, context):
        return None
    for group in reversed(list(_DIGIT_RUN.finditer(chain))):
        end = match.start() + group.end()
        trimmed = group.end() < len(chain)
        if _ends_number(match.string, end) and _is_phone(
            chain[: group.end()], context, trimmed=trimmed
        ):
            return match.start(), end
    return None


def _may_be_phone(chain: str, context: _PhoneContext) -> bool:
    """Return whether any phone rule can accept a chain with this start.

    This cheap test keeps number-heavy text fast.
    """
    if chain[0] in "+(" or context is _PhoneContext.PHONE_WORD:
        return True
    first_group = _DIGIT_RUN.match(chain)
    return first_group is not None and (
        chain[0] == "0" or len(first_group.group()) == 3 or first_group.group() == "1"
    )


def _ends_number(text: str, end: int) -> bool:
    """Return whether a number ending at ``end`` is not part of a longer token."""
    if end == len(text):
        return True
    following = text[end]
    if following.isascii() and (following.isalnum() or following == "_"):
        return False
    return not (following in ".,-/" and end + 1 < len(text) and text[end + 1].isdigit())


def _is_phone(candidate: str, context: _PhoneContext, *, trimmed: bool) -> bool:
    """Return whether ``candidate`` reads as a phone number in ``context``.

    ``trimmed`` is true when groups that followed ``candidate`` were dropped.
    """
    groups = _DIGIT_RUN.findall(candidate)
    digit_count = sum(len(group) for group in groups)
    if candidate.startswith(("+", "(+")):
        # E.164 allows at most 15 digits. A run of one-digit groups (+1 2 3 4)
        # is arithmetic, but French numbers have one such group (+33 6 12 ...).
        single_digit_groups = sum(len(group) == 1 for group in groups[1:])
        return 8 <= digit_count <= 15 and single_digit_groups <= 1
    if context is _PhoneContext.OTHER_NUMBER_WORD:
        return False
    if _NANP.fullmatch(candidate):
        return True
    if _NATIONAL.fullmatch(candidate) and 9 <= digit_count <= 12:
        # Numbers written in pairs are French, which have exactly five pairs.
        # A run of more pairs is lottery numbers or a table, not a phone
        # number followed by something else.
        if all(len(group) == 2 for group in groups[1:]):
            return digit_count == 10 and not trimmed
        return True
    if context is _PhoneContext.PHONE_WORD:
        return 7 <= digit_count <= 15 and (len(groups) > 1 or digit_count >= 9)
    return False


_PERSONAL_DATA_RULES = (
    _Rule("EMAIL", _EMAIL, _value_span, _contains("@")),
    _Rule("IBAN", _IBAN, _locate_iban, _has_digit),
    _Rule("CARD", _CARD, _locate_card, _has_digit),
    _Rule("IP", _IPV6, _locate_ipv6, _contains(":")),
    _Rule("IP", _IPV4, _locate_ipv4, _contains(".")),
    _Rule("PHONE", _PHONE, _locate_phone, _has_digit),
)

# ---------------------------------------------------------------- public API

_LABEL = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _compile_extra_pattern(
    item: RedactionPattern | tuple[str, str | re.Pattern[str]],
) -> _Rule:
    """Compile one extra pattern into a rule.

    Raises:
        ValueError: If the label or the regular expression is invalid.
        TypeError: If the item or its pattern has the wrong type.
    """
    if not isinstance(item, RedactionPattern):
        if not isinstance(item, tuple) or len(item) != 2:
            raise TypeError(
                "an extra redaction pattern must be a RedactionPattern or a "
                f"(label, regex) tuple, got {item!r}"
            )
        item = RedactionPattern(*item)
    if not isinstance(item.label, str) or not _LABEL.fullmatch(item.label):
        raise ValueError(
            f"invalid redaction label {item.label!r}: use ASCII letters, digits "
            "and underscores, starting with a letter"
        )
    return _Rule(item.label, _compile_regex(item), _extra_locator(item))


def _compile_regex(item: RedactionPattern) -> re.Pattern[str]:
    """Compile the pattern of ``item``, naming it in any error."""
    pattern = item.pattern
    if isinstance(pattern, re.Pattern):
        if not isinstance(pattern.pattern, str):
            raise TypeError(
                f"redaction pattern {item.label!r} must match str, not bytes"
            )
        return pattern
    if not isinstance(pattern, str):
        raise TypeError(
            f"redaction pattern {item.label!r} must be a str or re.Pattern, "
            f"got {type(pattern).__name__}"
        )
    try:
        return re.compile(pattern)
    except re.error as error:
        raise ValueError(
            f"invalid regular expression for redaction label {item.label!r}: "
            f"{pattern!r}: {error}"
        ) from None


def _extra_locator(item: RedactionPattern) -> _Locator:
    """Build the locator of an extra pattern around its optional validator."""
    validator = item.validator
    if validator is None:
        return _value_span

    def locate(match: re.Match[str]) -> _Span | None:
        span = _value_span(match)
        if span is None:
            return None
        try:
            keep = not validator(match.string[span[0] : span[1]])
        except Exception as error:  # noqa: BLE001 - fail closed, see below
            # The text is redacted, and the log names only the error type,
            # because its message could contain the text.
            _validator_warnings.warn(
                f"validator:{item.label}",
                "redaction validator for label %s raised %s; the text was redacted",
                item.label,
                type(error).__name__,
            )
            keep = False
        return None if keep else span

    return locate


class Redactor:
    """Replace personal data and credentials with typed placeholders.

    The built-in patterns are compiled once, at import, and the extra patterns
    once, here. A Redactor has no mutable state, so threads can share one.

    Args:
        extra_patterns: Additional detectors, as ``RedactionPattern`` objects
            or ``(label, regex)`` tuples. They run after the credential rules
            and before the personal-data rules (see the module docstring).
        max_chars: Number of characters redacted per call. Longer text is cut
            there and ``[TRUNCATED]`` is appended. None removes the limit.

    Raises:
        ValueError: If an extra pattern's regular expression or label is
            invalid (the message names both the pattern and the error), or if
            ``max_chars`` is not positive.
        TypeError: If an extra pattern has the wrong type.
    """

    __slots__ = ("_max_chars", "_rules")

    def __init__(
        self,
        extra_patterns: Sequence[
            RedactionPattern | tuple[str, str | re.Pattern[str]]
        ] = (),
        *,
        max_chars: int | None = DEFAULT_MAX_CHARS,
    ) -> None:
        if max_chars is not None and (
            isinstance(max_chars, bool) or not isinstance(max_chars, int)
        ):
            raise TypeError(f"max_chars must be an int or None, got {max_chars!r}")
        if max_chars is not None and max_chars < 1:
            raise ValueError(f"max_chars must be at least 1, got {max_chars}")
        self._max_chars = max_chars
        extra_rules = tuple(_compile_extra_pattern(item) for item in extra_patterns)
        self._rules = (*_CREDENTIAL_RULES, *extra_rules, *_PERSONAL_DATA_RULES)

    def redact(self, text: str) -> str:
        """Return ``text`` with every detected item replaced by ``[LABEL]``.

        Raises nothing for a ``str``: exceptions from an extra pattern's
        validator are caught, except those outside ``Exception``.

        Raises:
            TypeError: If ``text`` is not a ``str``.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        suffix = ""
        if self._max_chars is not None and len(text) > self._max_chars:
            # NOTE: an item cut in two at the limit can leave its first part
            # unredacted if that part no longer matches on its own.
            text = text[: self._max_chars]
            suffix = TRUNCATION_MARKER
        for rule in self._rules:
            text = rule.apply(text)
        return text + suffix


_DEFAULT_REDACTOR = Redactor()


def redact(
    text: str,
    *,
    extra_patterns: Sequence[RedactionPattern | tuple[str, str | re.Pattern[str]]] = (),
) -> str:
    """Return ``text`` with personal data and credentials replaced by placeholders.

    Uses a shared default ``Redactor`` (first 100,000 characters). Extra
    patterns are compiled on every call, so build a ``Redactor`` once instead
    when they do not change.

    Raises:
        ValueError: If an extra pattern is invalid.
        TypeError: If ``text`` is not a ``str`` or an extra pattern has the
            wrong type.
    """
    if not extra_patterns:
        return _DEFAULT_REDACTOR.redact(text)
    return Redactor(extra_patterns).redact(text)
