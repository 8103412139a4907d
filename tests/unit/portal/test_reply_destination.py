"""Where a patient's secure reply goes: never only to a noreply@ address nobody reads."""

from sealmail.portal.mailbox import reply_destination


def test_the_messages_reply_to_wins_then_the_senders_mailbox_then_the_tenants() -> None:
    settings = {
        "reply_mailbox": "desk@clinic.example",
        "reply_mailboxes": {"noreply@clinic.example": "rn@clinic.example"},
    }
    assert reply_destination("dr@clinic.example", "noreply@clinic.example", settings) == "dr@clinic.example"
    assert reply_destination("", "NoReply@clinic.example", settings) == "rn@clinic.example"
    assert reply_destination("", "results@clinic.example", settings) == "desk@clinic.example"
    assert reply_destination("", "results@clinic.example", {}) == "results@clinic.example"
    assert reply_destination("", "results@clinic.example", None) == "results@clinic.example"
