"""Message text extraction: bodies, HTML, PDF, DOCX, unscannable and hostile attachments."""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage

import pytest

from sealmail.dlp import Action, DlpPolicy, scan_message
from sealmail.dlp.extract import DOCX_TYPE, ExtractLimits, extract, html_to_text


def minimal_pdf(lines: list[str]) -> bytes:
    """A one-page PDF 1.4 with Helvetica text drawn by Tj operators and a correct xref table."""

    def escape(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    ops = ["BT", "/F1 12 Tf", "72 720 Td"]
    for line in lines:
        ops += [f"({escape(line)}) Tj", "0 -18 Td"]
    ops.append("ET")
    content = "\n".join(ops)
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def minimal_docx(paragraphs: list[str], *, doctype: str = "", padding: int = 0) -> bytes:
    """A DOCX with just the parts Word needs, built with zipfile (no python-docx)."""
    body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    document = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>{doctype}'
        f'<w:document xmlns:w="{W_NS}"><w:body>{body}{" " * padding}</w:body></w:document>'
    )
    content_types = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.wordprocessingml.document.main+xml"/></Types>'
    )
    rels = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", content_types)
        archive.writestr("_rels/.rels", rels)
        archive.writestr("word/document.xml", document)
    return buffer.getvalue()


def message(text: str = "Hello", html: str | None = None, subject: str = "Hi") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "clinic@example.test"
    msg["To"] = "someone@example.test"
    msg["Subject"] = subject
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg


def locations(raw: bytes) -> dict[str, str]:
    return {part.location: part.text for part in extract(raw).parts}


def test_subject_text_and_html_bodies_become_parts() -> None:
    msg = message(
        "Plain body",
        "<html><head><style>p{color:red}</style><script>var ssn='512-44-3321';</script></head>"
        "<body><p>HTML&nbsp;body &amp; more</p><p>line two</p></body></html>",
        subject="Your results",
    )
    parts = locations(msg.as_bytes())
    assert parts["subject"] == "Your results"
    assert parts["text"].strip() == "Plain body"
    assert "HTML\xa0body & more" in parts["html"]
    assert "line two" in parts["html"]
    # Scripts and styles are not visible text.
    assert "512-44-3321" not in parts["html"]
    assert "color" not in parts["html"]


def test_html_to_text_breaks_blocks_and_cells() -> None:
    text = html_to_text("<table><tr><td>DOB</td><td>03/14/1985</td></tr></table><div>a</div>b")
    assert "DOB\t03/14/1985" in text
    assert "a\nb" in text.replace("\n\n", "\n")


def test_hand_written_pdf_is_extracted_by_pypdf() -> None:
    pytest.importorskip("pypdf")
    msg = message()
    pdf = minimal_pdf(["Lab report for MRN: 00482134", "Dx: E11.9 type 2 diabetes"])
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="report.pdf")
    result = extract(msg.as_bytes())
    assert result.unscanned == []
    (pdf_part,) = [p for p in result.parts if p.location == "attachment[0]:report.pdf"]
    assert "MRN: 00482134" in pdf_part.text
    assert "E11.9" in pdf_part.text
    assert any(p.location == "filename[0]" and p.text == "report.pdf" for p in result.parts)


def test_pdf_encrypted_with_a_user_password_is_unscanned() -> None:
    pypdf = pytest.importorskip("pypdf")
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(minimal_pdf(["SSN 512-44-3321"]))))
    writer.encrypt(user_password="s3cret", owner_password="owner", algorithm="AES-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    msg = message()
    msg.add_attachment(buffer.getvalue(), maintype="application", subtype="pdf", filename="locked.pdf")
    result = extract(msg.as_bytes())
    assert result.unscanned == ["attachment[0]:locked.pdf"]
    verdict = scan_message(msg.as_bytes(), DlpPolicy(unscanned_action=Action.QUARANTINE))
    assert verdict.action is Action.QUARANTINE
    assert verdict.reason == "not scanned: attachment[0]"


def test_pdf_with_only_an_owner_password_is_still_read() -> None:
    pypdf = pytest.importorskip("pypdf")
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(minimal_pdf(["SSN 512-44-3321"]))))
    writer.encrypt(user_password="", owner_password="owner", algorithm="AES-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    msg = message()
    msg.add_attachment(buffer.getvalue(), maintype="application", subtype="pdf", filename="print-locked.pdf")
    verdict = scan_message(msg.as_bytes(), DlpPolicy())
    assert verdict.detectors == {"ssn"}
    assert verdict.unscanned == ()


def test_broken_pdf_is_unscanned_not_an_error() -> None:
    msg = message()
    broken = b"%PDF-1.4\n garbage \x00\xff"
    msg.add_attachment(broken, maintype="application", subtype="pdf", filename="x.pdf")
    assert extract(msg.as_bytes()).unscanned == ["attachment[0]:x.pdf"]


def test_docx_built_with_zipfile_is_read() -> None:
    msg = message()
    docx = minimal_docx(["Referral letter", "Patient DOB: 03/14/1985", "Medicare MBI 1EG4TE5MK73"])
    subtype = DOCX_TYPE.split("/")[1]
    msg.add_attachment(docx, maintype="application", subtype=subtype, filename="referral.docx")
    verdict = scan_message(msg.as_bytes(), DlpPolicy())
    assert verdict.detectors == {"dob", "mbi"}
    assert verdict.reason == "dob in attachment[0]; mbi in attachment[0]"


def test_docx_built_with_python_docx_is_read() -> None:
    docx = pytest.importorskip("docx")
    document = docx.Document()
    document.add_paragraph("Discharge summary")
    document.add_paragraph("Assessment: I10 essential hypertension")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Member ID:"
    table.rows[0].cells[1].text = "XKH448120001"
    buffer = io.BytesIO()
    document.save(buffer)
    msg = message()
    # Sent as octet-stream: the .docx name is enough to pick the extractor.
    msg.add_attachment(buffer.getvalue(), maintype="application", subtype="octet-stream", filename="s.docx")
    verdict = scan_message(msg.as_bytes(), DlpPolicy())
    assert verdict.detectors == {"icd10", "member_id"}


def test_docx_zip_bomb_is_unscanned() -> None:
    # 4 MB of blanks compresses to a few KB; the limit stops it before it is inflated.
    bomb = minimal_docx(["SSN 512-44-3321"], padding=4 * 1024 * 1024)
    assert len(bomb) < 64 * 1024
    msg = message()
    msg.add_attachment(bomb, maintype="application", subtype="octet-stream", filename="bomb.docx")
    result = extract(msg.as_bytes(), ExtractLimits(max_docx_xml_bytes=1024 * 1024))
    assert result.unscanned == ["attachment[0]:bomb.docx"]
    assert not any(p.location.startswith("attachment[0]") for p in result.parts)


def test_docx_declaring_entities_is_refused() -> None:
    laughs = '<!DOCTYPE w:document [<!ENTITY lol "lol">]>'
    msg = message()
    msg.add_attachment(
        minimal_docx(["&lol;"], doctype=laughs),
        maintype="application",
        subtype="octet-stream",
        filename="laughs.docx",
    )
    assert extract(msg.as_bytes()).unscanned == ["attachment[0]:laughs.docx"]


def test_text_attachments_are_scanned_and_binary_ones_are_not() -> None:
    msg = message()
    msg.add_attachment("name,ssn\nA. Sample,512-44-3321\n", subtype="csv", filename="roster.csv")
    msg.add_attachment(b"\x89PNG\r\n\x1a\n", maintype="image", subtype="png", filename="chart.png")
    msg.add_attachment(b"PK\x03\x04", maintype="application", subtype="zip", filename="all.zip")
    result = extract(msg.as_bytes())
    assert "attachment[0]:roster.csv" in {p.location for p in result.parts}
    assert result.unscanned == ["attachment[1]:chart.png", "attachment[2]:all.zip"]
    verdict = scan_message(msg.as_bytes(), DlpPolicy(actions={"ssn": Action.BLOCK}))
    assert verdict.action is Action.BLOCK
    assert verdict.reason == "ssn in attachment[0]; not scanned: attachment[1], attachment[2]"


def test_phi_in_an_attachment_file_name_is_found() -> None:
    msg = message()
    msg.add_attachment(b"\x89PNG", maintype="image", subtype="png", filename="MRN 00482134 xray.png")
    verdict = scan_message(msg.as_bytes(), DlpPolicy())
    assert "mrn" in verdict.detectors
    assert all("00482134" not in f.location for f in verdict.findings)


def test_forwarded_message_subject_and_body_are_scanned() -> None:
    inner = message("Inner body: SSN 512-44-3321", subject="Fwd: DOB 03/14/1985")
    outer = message("See below")
    outer.add_attachment(inner)
    parts = locations(outer.as_bytes())
    assert parts["message[0]:subject"] == "Fwd: DOB 03/14/1985"
    assert any("SSN 512-44-3321" in text for text in parts.values())


def test_encoded_subject_and_charset_bodies_are_decoded() -> None:
    raw = (
        b"From: a@example.test\r\nTo: b@example.test\r\n"
        b"Subject: =?utf-8?q?R=C3=A9sultats_DOB_03/14/1985?=\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=x-unknown-charset\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nSSN 512=2D44=2D3321\r\n"
    )
    parts = locations(raw)
    assert parts["subject"] == "Résultats DOB 03/14/1985"
    assert "512-44-3321" in parts["text"]


def test_oversized_body_is_cut_and_reported() -> None:
    msg = message("x" * 5000)
    result = extract(msg.as_bytes(), ExtractLimits(max_part_chars=1000))
    text = next(p for p in result.parts if p.location == "text")
    assert len(text.text) == 1000
    assert result.unscanned == ["text"]
