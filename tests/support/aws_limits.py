"""Wrappers around moto's clients that refuse what real AWS refuses and moto lets through.

moto is lenient where AWS is not; a test that wraps a client here sees the error AWS would send, in the shape
botocore raises it (a ``ClientError`` with the service's error code). Each rule names the limit it enforces.
"""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import ClientError

# SQS accepts only these characters in a message body and in a String attribute value (the XML 1.0 character set):
# #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF. moto accepts any text.
SQS_REFUSED_CHARACTER = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _refusal(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message, "Type": "Sender"}}, operation)


class StrictSqs:
    """An SQS client (moto's) that refuses, as SQS does, a message whose body or String attribute value holds a
    character outside SQS's set, or whose attribute value is empty. Every other call goes to the wrapped client."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs
        self.refused: list[str] = []  # the error code of every call refused here

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def _check(self, body: str, attributes: dict[str, Any], operation: str) -> None:
        bad = SQS_REFUSED_CHARACTER.search(body)
        if bad:
            self.refused.append("InvalidMessageContents")
            raise _refusal(
                "InvalidMessageContents", f"Invalid binary character '#x{ord(bad.group()):x}' was found", operation
            )
        for name, value in attributes.items():
            text = value.get("StringValue")
            if text == "":
                self.refused.append("InvalidParameterValue")
                raise _refusal(
                    "InvalidParameterValue",
                    f"Message (user) attribute '{name}' must contain a non-empty value of type 'String'.",
                    operation,
                )
            bad = SQS_REFUSED_CHARACTER.search(text or "")
            if bad:
                self.refused.append("InvalidParameterValue")
                raise _refusal(
                    "InvalidParameterValue",
                    f"Message (user) attribute '{name}' value contains invalid binary character "
                    f"'#x{ord(bad.group()):x}'.",
                    operation,
                )

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self._check(kwargs.get("MessageBody", ""), kwargs.get("MessageAttributes") or {}, "SendMessage")
        return self._sqs.send_message(**kwargs)
