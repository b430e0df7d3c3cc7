"""VietQR: the EMVCo merchant-presented QR (NAPAS "QRIBFTTA", transfer to an account) a Vietnamese
banking app scans, and the bank details shown beside it. The memo is the booking's (or pass's) code:
the bank feed brings it back and loafy.money.bank finds it there."""

import logging

log = logging.getLogger(__name__)

NAPAS_GUID = "A000000727"
SERVICE_ACCOUNT_TRANSFER = "QRIBFTTA"


def _tlv(tag, value):
    return f"{tag}{len(value):02d}{value}"


def crc16(text):
    """CRC-16/CCITT-FALSE over the UTF-8 bytes, as four upper-case hex digits (EMVCo tag 63)."""
    crc = 0xFFFF
    for byte in text.encode("utf-8"):
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return f"{crc:04X}"


def payload(bank_bin, account, amount, reference):
    """The text a banking app reads: bank BIN + account, amount in VND, the code as the note."""
    beneficiary = _tlv("00", bank_bin) + _tlv("01", account)
    merchant = _tlv("00", NAPAS_GUID) + _tlv("01", beneficiary) + _tlv("02", SERVICE_ACCOUNT_TRANSFER)
    body = (
        _tlv("00", "01")
        + _tlv("01", "12")  # dynamic: one payment
        + _tlv("38", merchant)
        + _tlv("53", "704")  # VND
        + _tlv("54", str(int(amount)))
        + _tlv("58", "VN")
        + _tlv("62", _tlv("08", reference))
        + "6304"
    )
    return body + crc16(body)


def bank_details(settings, memo):
    """What the VietQR code holds and the page shows: {bank_name, bank_bin, account_number,
    account_name, memo}."""
    return {
        "bank_name": str(settings.get("bank_name") or ""),
        "bank_bin": str(settings.get("bank_bin") or ""),
        "account_number": str(settings.get("bank_account_number") or ""),
        "account_name": str(settings.get("bank_account_name") or ""),
        "memo": memo,
    }


def qr_svg(settings, amount, memo):
    """The VietQR code as inline SVG, or None when the club's bank details cannot make one."""
    details = bank_details(settings, memo)
    if not (details["bank_bin"].isdigit() and details["account_number"] and amount > 0):
        return None
    try:
        import segno

        qr = segno.make(payload(details["bank_bin"], details["account_number"], amount, memo), error="m")
        return qr.svg_inline(scale=5, title=f"VietQR {memo}")
    except Exception:  # a QR is a convenience: the bank details are shown in text anyway
        log.exception("could not draw the VietQR code for %s", memo)
        return None
