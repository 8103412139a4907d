"""Real-world-shaped inbound reports, parametrised by who they are about.

Shapes follow what the MTAs send: Postfix's bounce(8) DSN, Exchange Online's NDR, a
Gmail-style DSN returning only headers, RFC 5965 Appendix B's ARF example, a qmail-style
plain-text bounce and an RFC 3834 vacation reply.
"""

from __future__ import annotations

TRACE = "X-Sealmail-Message-Id"


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def postfix_dsn(
    rcpt: str = "patient@example.net",
    *,
    return_path: str = "b+rcp_x.y@bounces.clinic.example",
    trace_id: str = "msg_01",
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str = "smtp; 550 5.1.1 <patient@example.net>: Recipient address rejected: User unknown",
) -> bytes:
    return _crlf(f"""Return-Path: <>
From: MAILER-DAEMON@mx1.example.net (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {return_path}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="3F1A1C0082.1700000000/mx1.example.net"

This is a MIME-encapsulated message.

--3F1A1C0082.1700000000/mx1.example.net
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx1.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

--3F1A1C0082.1700000000/mx1.example.net
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx1.example.net
X-Postfix-Queue-ID: 3F1A1C0082
X-Postfix-Sender: rfc822; {return_path}
Arrival-Date: Tue,  1 Apr 2025 09:00:00 +0000 (UTC)

Final-Recipient: rfc822; {rcpt}
Original-Recipient: rfc822;{rcpt}
Action: {action}
Status: {status}
Remote-MTA: dns; mailstore.example.net
Diagnostic-Code: {diagnostic}

--3F1A1C0082.1700000000/mx1.example.net
Content-Description: Undelivered Message
Content-Type: message/rfc822

Return-Path: <{return_path}>
{TRACE}: {trace_id}
From: Clinic <noreply@clinic.example>
To: {rcpt}
Subject: Lab results ready
Message-ID: <m1@clinic.example>

Your results are ready.

--3F1A1C0082.1700000000/mx1.example.net--
""")


def exchange_ndr(rcpt: str = "Patient@Example.net", *, status: str = "5.2.2") -> bytes:
    """Exchange Online: the original as message/rfc822 after the report, no Auto-Submitted."""
    return _crlf(f"""From: postmaster@example.net
To: <b+rcp_x.y@bounces.clinic.example>
Subject: Undeliverable: Lab results ready
Content-Type: multipart/report; report-type=delivery-status;
	boundary="_000_NDR_"
MIME-Version: 1.0

--_000_NDR_
Content-Type: multipart/alternative; boundary="_002_alt_"

--_002_alt_
Content-Type: text/plain; charset="us-ascii"

Delivery has failed to these recipients or groups:
{rcpt}
The recipient's mailbox is full and can't accept messages now.

--_002_alt_
Content-Type: text/html; charset="us-ascii"

<html><body><p>Delivery has failed</p></body></html>

--_002_alt_--

--_000_NDR_
Content-Type: message/delivery-status

Reporting-MTA: dns;DM6PR01MB0001.namprd01.prod.outlook.com
Received-From-MTA: dns;out.sealmail.test
Arrival-Date: Tue, 1 Apr 2025 09:00:01 +0000

Final-Recipient: rfc822;{rcpt}
Action: failed
Status: {status}
Diagnostic-Code: smtp;554 {status} mailbox full;
 STOREDRV.Deliver.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded
Remote-MTA: dns;DM6PR01MB0002.namprd01.prod.outlook.com

--_000_NDR_
Content-Type: message/rfc822

From: Clinic <noreply@clinic.example>
To: <{rcpt}>
Subject: Lab results ready

Your results are ready.

--_000_NDR_--
""")


def gmail_delayed(rcpt: str = "patient@example.net") -> bytes:
    """A delay notice returning only the original's headers (text/rfc822-headers)."""
    return _crlf(f"""From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: b+rcp_x.y@bounces.clinic.example
Subject: Delivery Status Notification (Delay)
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; boundary="000000000000ab"; report-type=delivery-status

--000000000000ab
Content-Type: text/plain; charset="UTF-8"

Message temporarily not delivered. Gmail will retry for 46 more hours.

--000000000000ab
Content-Type: message/delivery-status

Reporting-MTA: dns; googlemail.com
Arrival-Date: Tue, 01 Apr 2025 09:00:00 -0700

Final-Recipient: rfc822; {rcpt}
Action: delayed
Status: 4.4.1
Diagnostic-Code: smtp; The recipient server did not accept our requests to
 connect.
Last-Attempt-Date: Tue, 01 Apr 2025 11:00:00 -0700
Will-Retry-Until: Thu, 03 Apr 2025 09:00:00 -0700

--000000000000ab
Content-Type: text/rfc822-headers

Return-Path: <b+rcp_x.y@bounces.clinic.example>
From: Clinic <noreply@clinic.example>
To: {rcpt}
Subject: Lab results ready

--000000000000ab--
""")


def arf_report(
    *,
    rcpt: str = "user@example.com",
    return_path: str | None = None,
    trace_id: str | None = None,
    feedback_type: str = "abuse",
) -> bytes:
    """RFC 5965 Appendix B.2, with the original's headers pointing at our message."""
    extra = ""
    if return_path:
        extra += f"Return-Path: <{return_path}>\n"
    if trace_id:
        extra += f"{TRACE}: {trace_id}\n"
    return _crlf(f"""From: <abusedesk@example.com>
Date: Thu, 8 Mar 2005 17:40:36 EDT
Subject: FW: Earn money
To: <abuse@example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
     boundary="part1_13d.2e68ed54_boundary"

--part1_13d.2e68ed54_boundary
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP
192.0.2.1 on Thu, 8 Mar 2005 14:00:00 EDT.  For more information
about this format please see http://www.mipassoc.org/arf/.

--part1_13d.2e68ed54_boundary
Content-Type: message/feedback-report

Feedback-Type: {feedback_type}
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <somespammer@example.net>
Original-Rcpt-To: <{rcpt}>
Arrival-Date: Thu, 8 Mar 2005 14:00:00 EDT
Reporting-MTA: dns; mail.example.com
Source-IP: 192.0.2.1
Authentication-Results: mail.example.com;
               spf=fail smtp.mail=somespammer@example.com
Reported-Domain: example.net
Reported-Uri: http://example.net/earn_money.html
Removal-Recipient: {rcpt}

--part1_13d.2e68ed54_boundary
Content-Type: message/rfc822
Content-Disposition: inline

{extra}From: <somespammer@example.net>
Received: from mailserver.example.net (mailserver.example.net
        [192.0.2.1]) by example.com with ESMTP id M63d4137594e46;
        Thu, 08 Mar 2005 14:00:00 -0400
To: <{rcpt}>
Subject: Earn money
MIME-Version: 1.0
Content-type: text/plain
Message-ID: 8787KJKJ3K4J3K4J3K4J3.mail@example.net
Date: Thu, 02 Sep 2004 12:31:03 -0500

Spam Spam Spam
Spam Spam Spam
--part1_13d.2e68ed54_boundary--
""")


def qmail_bounce() -> bytes:
    """No multipart/report at all: the fallback reads the code from the text."""
    return _crlf("""From: MAILER-DAEMON@mail.example.org
To: b+rcp_x.y@bounces.clinic.example
Subject: failure notice

Hi. This is the qmail-send program at mail.example.org.
I'm afraid I wasn't able to deliver your message to the following addresses.

<patient@example.org>:
192.0.2.7 does not like recipient.
Remote host said: 550 5.1.1 No such user
Giving up on 192.0.2.7.
""")


def vacation_reply() -> bytes:
    return _crlf("""From: Jane Roe <patient@example.net>
To: b+rcp_x.y@bounces.clinic.example
Subject: Out of office: Lab results ready
Auto-Submitted: auto-replied

I am away until 5.1.2025 and will answer when back.
""")
