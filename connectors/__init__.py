"""All I/O with the outside world: mail, webhooks, chat platforms and the built-in web inbox."""
