"""Email: MIME parsing, IMAP intake and SMTP delivery."""
